"""Form compliance of a poem model over many constrained generations (acrostics included).

    python benchmarks/poetry_forms.py [--model models/poetry] [--count 1000] [--seed 0] [--batch 8]
                                      [--engine tensorflow|numpy|auto]

Every generation asks for one of the four forms, half of them with an acrostic of random characters
(as many as the form has lines, or fewer); a poem complies when its lines have the form's length, end
with ，and 。 alternately, hold no other punctuation, and the acrostic heads its lines in order.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def complies(text: str, n: int, m: int, acrostic: str = "") -> bool:
    lines = re.findall(r"[^，。]+[，。]", text)
    if "".join(lines) != text or len(lines) != m:
        return False
    for i, line in enumerate(lines):
        if len(line) != n + 1 or line[-1] != ("，" if i % 2 == 0 else "。") or re.search("[，。]", line[:-1]):
            return False
    return all(lines[i][0] == c for i, c in enumerate(acrostic))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/poetry")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=0,
                    help="Poems per call (default: all of a group at once); 8 or fewer exercises the XLA path.")
    ap.add_argument("--engine", choices=["tensorflow", "numpy", "auto"], default="tensorflow",
                    help="Who generates (default: the SavedModel's graph).")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from rnn_apps.apps.poetry.constants import FORMS
    from rnn_apps.apps.poetry.generate import PoemGenerator

    gen = PoemGenerator(args.model, engine=args.engine)
    rng = np.random.default_rng(args.seed)
    common = [t for t in gen.meta["vocab"]["tokens"][4:504] if t not in "，。"]
    forms = [f for f in FORMS if f]
    per = args.count // (2 * len(forms))
    ok = total = 0
    by_form = {}
    t0 = time.perf_counter()
    for form in forms:
        n, m = FORMS[form]
        for with_acrostic in (False, True):
            acrostic = "".join(rng.choice(common, size=int(rng.integers(1, m + 1)), replace=False)) if with_acrostic else ""
            seed = int(rng.integers(1 << 40))
            step = args.batch or per
            poems = [p for i in range(0, per, step)  # row i always uses seed + i, whatever the batch
                     for p in gen.generate(acrostic=acrostic, form=form, n=min(step, per - i), seed=seed + i)]
            good = sum(complies(p.text, n, m, acrostic) for p in poems)
            ok += good
            total += len(poems)
            key = f"{form}{' +acrostic' if with_acrostic else ''}"
            by_form[key] = {"ok": good, "total": len(poems), "example": poems[0].text, "acrostic": acrostic}
    secs = time.perf_counter() - t0
    result = {"compliant": ok, "total": total, "rate": ok / total, "seconds": secs, "by_form": by_form}
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return
    for k, v in by_form.items():
        print(f"{k:18} {v['ok']:4}/{v['total']:<4} e.g. {v['acrostic'] or '-':8} {v['example']}")
    print(f"form compliance: {ok}/{total} = {100 * ok / total:.1f}% ({secs:.1f} s)")


if __name__ == "__main__":
    main()
