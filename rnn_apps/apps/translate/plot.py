"""Heat maps of attention: source tokens (columns) against the target tokens written (rows), with matplotlib."""

from __future__ import annotations

import os
import re
import warnings

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
             "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Microsoft YaHei", "SimHei", "PingFang SC", "Heiti SC",
             "Hiragino Sans GB", "AR PL UMing CN", "AR PL UKai CN", "Droid Sans Fallback", "Arial Unicode MS")
_CJK_FILE = re.compile(r"(?i)wqy|NotoSans.*(CJK|SC|TC|JP)|SourceHanSans|simhei|msyh|PingFang|DroidSansFallback|uming|ukai")
_HAN = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]")


def cjk_font() -> str | None:
    """The name of an installed font with Chinese characters, or None."""
    from matplotlib import font_manager

    for attempt in range(2):
        names = {f.name for f in font_manager.fontManager.ttflist}
        for name in CJK_FONTS:
            if name in names:
                return name
        if attempt == 0:  # a font installed after matplotlib built its cache: add the system's CJK font files
            for path in font_manager.findSystemFonts():
                if _CJK_FILE.search(os.path.basename(path)):
                    try:
                        font_manager.fontManager.addfont(path)
                    except Exception:  # noqa: BLE001 - an unreadable font file is skipped
                        pass
    return None


def plot_attention(alignment, path: str, title: str | None = None) -> str:
    """Save the attention of ``alignment`` (a :class:`~rnn_apps.apps.translate.translate.Alignment`) to ``path``.

    Chinese labels need a CJK font (e.g. ``apt install fonts-wqy-microhei`` or ``fonts-noto-cjk``); without
    one the plot is still written, with a warning, and Chinese tokens show as boxes.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = list(alignment.source_tokens) + list(alignment.target_tokens)
    font = cjk_font()
    if font is None and any(_HAN.search(t) for t in labels):
        warnings.warn("No font with Chinese characters is installed (e.g. fonts-wqy-microhei or fonts-noto-cjk); "
                      "Chinese tokens in the attention plot will show as boxes.", stacklevel=2)
    weights = np.asarray(alignment.weights, dtype=np.float32)
    S, T = len(alignment.source_tokens), len(alignment.target_tokens)
    rc = {"font.sans-serif": [font, "DejaVu Sans"] if font else ["DejaVu Sans"], "font.family": "sans-serif"}
    with matplotlib.rc_context(rc), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * S + 2.0), max(3.0, 0.4 * T + 1.8)))
        im = ax.imshow(weights if weights.size else np.zeros((1, 1)), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(S), alignment.source_tokens, rotation=60, ha="right")
        ax.set_yticks(range(T), alignment.target_tokens)
        ax.set_xlabel("source")
        ax.set_ylabel("translation")
        if title is None:
            title = f"{alignment.source}\n{alignment.translation}"
            if not getattr(alignment, "has_attention", True):
                title += "\n(model without attention: no alignment)"
        ax.set_title(title, fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return path
