#!/usr/bin/python3
"""eval_tiny.py — held-out accuracy of a dashkit-tiny checkpoint in torch (dense prefill).

  /usr/bin/python3 scripts/eval_tiny.py [--ckpt CKPT] [--samples N] [--json OUT.json] [--quick]
  /usr/bin/python3 scripts/eval_tiny.py --curve [TRAIN_LOG]   (Markdown learning curve from
        train_tiny.py's train.log: every held-out check and promotion, with loss and hours)

Measures the quality bar of issue 8 on freshly generated samples (seed --seed, never used by
training: train_tiny.py draws training samples from its own seeded stream and held-out checks
from seeds >= 1e9) whose haystacks come ONLY from datasets/corpora/*-heldout.txt (SOTU speeches of
years ending in 7, Moby Dick chapters 121-135 + epilogue) and whose NIAH key words are the held-out
word list (crc32(word) % 5 == 0; never a key in training):

  passkey      canonical format, lengths 1024/2048/4096, depths 0,10,...,100 % (N per depth)
  niah_single  word key -> 7-digit value, lengths 1024/2048/4096, depths 0..100 %
  niah_multikey  1 of 4 needles, lengths 1024/2048/4096 (11*N samples each)
  niah_single_ruler  (not in the default --tasks) niah_single asked in RULER's plural phrasing,
               the one dashkit's own RULER tasks use
  vt           variable tracking, 1 chain of 2 hops (issue 18's bar), in dashkit's RULER format
               (eval/tasks/ruler.c: "VAR X = 12345" statements, RULER's question, the prompt ending in
               its trailing space) on the noise haystack dashkit's `vt` uses by default
               (11*N samples per length, statement positions at random)
  vt_text      the same on held-out real text

"length" is the total token count of [BOS] + prompt + answer (about; the haystack is cut at word
boundaries).  Segments are joined with "\\n" as in the passkey literature's code.  Score: exact
match of the whole answer (digits and the final '.'), computed under teacher forcing — every
answer token must be the argmax given the gold prefix, which is exactly the condition for greedy
decoding to produce the answer.  Prints one line per cell "TASK@LEN: ACC (k/n)" and a Markdown
table; --json writes all cells (with per-depth counts).
"""

import argparse
import json
import os
import random
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import tiny_tasks  # noqa: E402
import train_tiny  # noqa: E402

DEPTHS = [i / 10 for i in range(11)]


def learning_curve(path):
    """Markdown table of train.log: one row per held-out check (the mean training loss of the
    preceding log window, the check accuracies, promotions)."""
    last = {}
    rows = []
    for line in open(path):
        r = json.loads(line)
        if r.get("event") == "train":
            last = r
        elif r.get("event") == "check":
            acc = " ".join("%s %.2f" % (k, v) for k, v in r["acc"].items())
            note = ("-> %s %d" % tuple(r["promoted_to"])) if r.get("promoted_to") else ""
            if r.get("stuck_promotion"):
                note += " (%s not passed)" % ("vt" if r["stage"] == "vt" else "multi-key")
            if r.get("lm_on"):
                note += " LM objective on"
            rows.append("| %d | %.2f | %s | %d | %s | %s | %s |" % (
                r["step"], last.get("hours", 0), r["stage"], r["length"], last.get("loss", float("nan")),
                acc, note))
    print("| step | hours | stage | length | train loss | held-out check (exact match) | promotion |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


def embedding_stats(model, sp):
    """Mean norm and mean pairwise cosine of the single-capital-letter pieces (vt names; X and Z
    are byte fallbacks) and of the digits, against the mean norm of all embeddings."""
    E = model.tok_embeddings.weight.detach()
    norms = E.norm(dim=1)

    def row(name, pieces):
        ids = [sp.piece_to_id(p) for p in pieces]
        u = E[ids] / norms[ids, None]
        c = u @ u.t()
        k = len(ids)
        print("%s: %d pieces, mean norm %.3f, mean pairwise cosine %.3f" % (
            name, k, norms[ids].mean().item(), ((c.sum() - c.trace()) / (k * (k - 1))).item()))
    letters = [c if sp.piece_to_id(c) != sp.unk_id() else "<0x%02X>" % ord(c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
    row("letters", letters)
    row("digits", list("0123456789"))
    print("all: %d pieces, mean norm %.3f" % (E.shape[0], norms.mean().item()))


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--curve":
        learning_curve(sys.argv[2] if len(sys.argv) > 2 else os.path.join(
            os.environ.get("DK_TRAIN_DIR", "/var/tmp/dashkit-train"), "train.log"))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=os.path.join(os.environ.get("DK_TRAIN_DIR", "/var/tmp/dashkit-train"), "ckpt.pt"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "models", "tokenizer.model"))
    ap.add_argument("--samples", type=int, default=10, help="samples per depth (per cell: 11x this)")
    ap.add_argument("--lengths", default="1024,2048,4096")
    ap.add_argument("--tasks", default="passkey,niah_single,niah_multikey")
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--json", default=None)
    ap.add_argument("--quick", action="store_true", help="3 samples per depth")
    ap.add_argument("--quick-above", type=int, default=0,
                    help="lengths above this get 3 samples per depth (the 4096 column costs most)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--embedding-stats", action="store_true",
                    help="print norms and mean pairwise cosine of the letter and digit embeddings, then exit")
    ap.add_argument("--per-token", action="store_true",
                    help="also print each cell's accuracy per answer token (in the JSON always)")
    ap.add_argument("--vt-hops", type=int, default=2, help="vt/vt_text: assignments after the first")
    args = ap.parse_args()
    if args.quick:
        args.samples = 3
    torch.set_num_threads(args.threads)
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=args.tokenizer)
    if not os.path.exists(args.ckpt):
        sys.exit("eval_tiny: %s: no such checkpoint" % args.ckpt)
    ck = torch.load(args.ckpt, map_location="cpu")
    cfg = train_tiny.Config.from_dict(ck["config"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = train_tiny.Llama(cfg).to(device)
    model.load_state_dict(ck["model"])
    model.eval()
    if args.embedding_stats:
        embedding_stats(model, sp)
        return
    corpus = tiny_tasks.Corpus(sp, "heldout")
    gen = tiny_tasks.TaskGen(sp, corpus, joiner="\n")
    st = ck["state"]
    print("checkpoint %s: step %d, stage %s, length %s, %.2f h" % (
        args.ckpt, st["step"], st["stage"], train_tiny.stage_lengths(st["stage"])[st["len_idx"]],
        st["train_seconds"] / 3600), flush=True)

    cells = []
    for task in args.tasks.split(","):
        for L in [int(x) for x in args.lengths.split(",")]:
            rng = random.Random("%d-%s-%d" % (args.seed, task, L))
            samples, depth_of = [], []
            per_depth = 3 if args.quick_above and L > args.quick_above else args.samples
            for d in DEPTHS:
                for _ in range(per_depth):
                    if task == "passkey":
                        s = gen.passkey(rng, L, depth=d, garbage=False)
                    elif task in ("niah_single", "niah_single_ruler"):
                        s = gen.niah_single(rng, L, depth=d, ruler_q=task.endswith("_ruler"))
                    elif task in ("vt", "vt_text"):
                        s = gen.vt(rng, L, hops=args.vt_hops, ruler=True, trail=True, noise=task == "vt")
                    else:
                        s = gen.make(rng, task, L)
                    samples.append(s)
                    depth_of.append(d)
            t0 = time.time()
            tok_ok = []
            ok = train_tiny.answer_exact(model, samples, device, chunk_tokens=max(8192, L), per_token=tok_ok)
            # accuracy of answer token j under teacher forcing (where a failing answer goes wrong)
            by_tok = [[sum(t[j] for t in tok_ok if len(t) > j), sum(1 for t in tok_ok if len(t) > j)]
                      for j in range(max(len(t) for t in tok_ok))]
            by_depth = {}
            for d, o in zip(depth_of, ok):
                k = "%d" % round(d * 100)
                a, n = by_depth.get(k, (0, 0))
                by_depth[k] = (a + int(o), n + 1)
            mean_len = sum(len(s["tokens"]) for s in samples) / len(samples)
            cell = {"task": task, "length": L, "acc": sum(ok) / len(ok), "correct": sum(ok), "n": len(ok),
                    "mean_tokens": round(mean_len, 1), "by_depth": by_depth, "by_answer_token": by_tok, "secs": round(time.time() - t0, 1)}
            cells.append(cell)
            print("%s@%d: %.3f (%d/%d)  mean tokens %.0f  by depth %s" % (
                task, L, cell["acc"], cell["correct"], cell["n"], mean_len,
                " ".join("%s:%d/%d" % (k, a, n) for k, (a, n) in by_depth.items())), flush=True)
            if args.per_token:
                print("  %s@%d answer tokens (teacher forcing): %s" % (task, L, " ".join(
                    "%d:%d/%d" % (j, a, n) for j, (a, n) in enumerate(by_tok))), flush=True)

    lengths = sorted({c["length"] for c in cells})
    print("\n| task | " + " | ".join(str(L) for L in lengths) + " |")
    print("|---|" + "---|" * len(lengths))
    for task in args.tasks.split(","):
        row = []
        for L in lengths:
            c = [x for x in cells if x["task"] == task and x["length"] == L]
            row.append("%.1f %% (%d/%d)" % (100 * c[0]["acc"], c[0]["correct"], c[0]["n"]) if c else "-")
        print("| %s | %s |" % (task, " | ".join(row)))
    if args.json:
        out = {"ckpt": args.ckpt, "step": st["step"], "stage": st["stage"], "train_hours": st["train_seconds"] / 3600,
               "tokens": st["tokens"], "seed": args.seed, "samples_per_depth": args.samples,
               "quick_above": args.quick_above, "cells": cells}
        with open(args.json + ".tmp", "w") as f:
            json.dump(out, f, indent=1)
        os.replace(args.json + ".tmp", args.json)


if __name__ == "__main__":
    main()
