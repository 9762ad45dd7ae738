"""Image captioning (看图说话): a CNN sees the image, a recurrent decoder with visual attention says what it sees."""
