"""Entry layer: what each CLI subcommand does, given parsed arguments. Each returns the dict printed as the last
JSON line."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

from .config import apply_overrides, preset
from .errors import UlmfitError, refuse_unknown_labels
from .longtext import cap_texts, progress
from .train.resume import Interrupted
from .validation import check_finite, check_output_dir, check_output_file, check_seed


# ---- flags -> a stage's config and data (here, not in cli/: cli imports this module, never the reverse) ----
def stage_config(args, stage: str):
    """Preset, then the dedicated flags, then --set overrides (type-checked)."""
    overrides = list(args.overrides)
    for flag, name in (("epochs", "train.epochs"), ("max_steps", "run.max_steps"), ("seed", "run.seed"),
                       ("threads", "run.threads"), ("precision", "run.precision"), ("strategy", "train.strategy")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.insert(0, f"{name}={value}")
    for flag in ("backwards", "no_pretraining"):
        if getattr(args, flag, False):
            overrides.insert(0, f"train.{flag}=true")
    return apply_overrides(preset(args.preset, stage), overrides)


def _data_spec(args):
    """--label-col exists only where labels are read (classify); the LM stages keep DataSpec's default."""
    from .pipeline import DataSpec
    if args.dataset and args.train:
        raise UlmfitError("pass either --dataset or --train, not both")
    return DataSpec(dataset=args.dataset, train=list(args.train), valid=args.valid, test=getattr(args, "test", None),
                    text_cols=list(args.text_col), label_col=getattr(args, "label_col", "label"))


def data(args) -> dict:
    from .data import download
    if args.action == "list":
        rows = download.list_datasets()
        print(f"{'name':<19} {'kind':<9} {'size':>9}  licence")
        for r in rows:
            print(f"{r['name']:<19} {r['kind']:<9} {r['size_mb']:>7.1f}MB  {r['licence']}")
        return {"datasets": [r["name"] for r in rows]}
    path = download.fetch(args.name)
    return {"dataset": args.name, "path": str(path)}


def lm(args) -> dict:
    from .pretrained import model_zoo
    if args.action == "list":
        rows = model_zoo.list_pretrained()
        for r in rows:
            where = "shipped" if r.get("shipped") else "cached " if r["cached"] else "       "
            print(f"{r['name']:<16} {r['size_mb']:>6.1f}MB  {where}  {r['description']}")
        return {"models": [r["name"] for r in rows]}
    if args.action == "download":
        return model_zoo.download_pretrained(args.name, args.out, sha256=args.sha256, force=args.force)
    if args.action == "import":
        return model_zoo.import_files(*args.fastai, args.out, args.preset, args.backwards, args.force,
                                      None if args.rules == "auto" else args.rules)
    from .pretrained.fastai_interop import export_fastai
    return export_fastai(args.fastai, args.out)


def tokenizer(args) -> dict:
    from .text.tokenizer import load_tokenizer, train_tokenizer
    if args.action == "encode":
        tok = load_tokenizer(args.dir)
        # the ids the model is fed: BOS + the text's tokens (+ an EOS per line for SentencePiece; fastai's words
        # start with xxbos and have no EOS, as fastai numericalises a document)
        ids = tok.encode_document(args.text)
        print(" ".join(tok.id_to_piece(i) for i in ids))
        print(" ".join(map(str, ids)))
        rules = getattr(tok, "rules", None)             # fastai's words: which rule set ran (v1 for wt103); after
        if rules is not None:                           # the two lines scripts read
            from .text.fastai_tokenizer import describe_rules
            print(f"rules: {describe_rules(rules)}")
        return {"ids": ids, "decoded": tok.decode(ids), **({"rules": rules} if rules else {})}
    from .pipeline import lm_documents
    check_output_dir(args.out, "--out")   # a run dir's tokenizer.model would be replaced under its model
    config = apply_overrides(preset(args.preset, "pretrain"), args.overrides)
    docs = lm_documents(_data_spec(args))
    tok = train_tokenizer(docs["train"], config.tokenizer, args.out)
    return {"out": str(args.out), "vocab_size": tok.vocab_size}


def _guard(fn):
    """Run a training stage: a stop by SIGINT/SIGTERM exits 130/143 with one line; under torchrun, leave the group."""
    from .runtime import cleanup_runtime
    try:
        result = fn()
    except Interrupted as e:              # every rank stopped at the same step (train.fit agrees on it)
        print(f"ulmfit: {e}", file=sys.stderr)
        cleanup_runtime()
        raise SystemExit(130 if e.signum == 2 else 143)
    # not in a `finally`: after an error on one rank, a barrier would wait forever for the others (still inside
    # a collective); exiting lets torchrun stop them
    cleanup_runtime()
    return result


def pretrain(args) -> dict:
    from .pipeline import pretrain as run
    config = stage_config(args, "pretrain")
    return _guard(lambda: run(config, _data_spec(args), args.out, tokenizer_dir=args.tokenizer,
                              resume=args.resume, force=args.force))


def finetune(args) -> dict:
    from .pipeline import finetune as run
    config = stage_config(args, "finetune")
    return _guard(lambda: run(config, args.pretrained, _data_spec(args), args.out, resume=args.resume,
                              force=args.force))


def classify(args) -> dict:
    from .pipeline import classify as run
    config = stage_config(args, "classify")
    lm_dir = args.finetuned or args.pretrained or args.from_classifier
    return _guard(lambda: run(config, lm_dir, _data_spec(args), args.out, resume=args.resume, force=args.force,
                              from_classifier=args.from_classifier is not None))


def fit(args) -> dict:
    from .fit import fit as run
    if not args.dataset and not args.train:
        raise UlmfitError("pass --train FILE (your labelled texts) or --dataset NAME")
    result = _guard(lambda: run(_data_spec(args), args.out, pretrained=args.pretrained, minutes=args.minutes,
                                unlabelled=list(args.unlabelled), seed=args.seed, force=args.force,
                                backwards=args.backwards, precision=args.precision, threads=args.threads))
    _say_delivered(result)
    return result


def _say_delivered(result: dict) -> None:
    """fit's last line for people: which model the run dir answers with, and how it did on validation."""
    acc = result.get("valid_accuracy")
    line = f"ulmfit fit: {result['out']}: ULMFiT {acc:.2%} on validation" if acc is not None else ""
    if result.get("baseline_ensemble"):
        line += (f"; the run dir predicts with {result.get('delivered')}, which did better on validation "
                 f"(lower log-loss; accuracy {result.get('delivered_valid_accuracy', 0):.2%}; TF-IDF + LR alone "
                 f"{result.get('baseline_valid_accuracy', 0):.2%})")
    print(line + f"; {result.get('minutes_total', 0):.1f} of {result.get('minutes_budget', 0):g} minutes", flush=True)


def evaluate(args) -> dict:
    from .data import readers
    from .predict import ensemble_proba
    from .analysis.metrics import classification_report, format_report
    if bool(args.dataset) == bool(args.data):
        raise UlmfitError("pass exactly one of --dataset NAME or --data FILE")
    if args.dataset:
        from .pipeline import labelled_splits, DataSpec
        splits = labelled_splits(DataSpec(dataset=args.dataset), seed=0, valid_frac=0.1)
        if args.split not in splits:
            raise UlmfitError(f"{args.dataset} has no {args.split} split")
        texts, labels = splits[args.split]
    else:
        # one class is fine here: the two-class rule is for training data
        texts, labels = readers.read_labelled_file(args.data, list(args.text_col), args.label_col,
                                                   need_two_classes=False)
    probs, names = ensemble_proba(args.dirs, cap_texts(list(texts), args.max_chars), args.batch_size,
                                  baseline=not args.no_baseline,
                                  int8=args.int8, max_tokens=args.max_tokens)
    refuse_unknown_labels(labels, names, "evaluation")
    index = {n: i for i, n in enumerate(names)}
    report = classification_report([index[str(lab)] for lab in labels], probs.argmax(1).tolist(), names)
    print(format_report(report))
    return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "n": report["n"],
            "models": [str(d) for d in args.dirs], "baseline": _with_baseline(args.dirs, args.no_baseline)}


def _with_baseline(dirs, off: bool) -> list[str]:
    """The dirs whose TF-IDF + LR baseline is averaged in (their run chose it on validation), said on stderr."""
    from .checkpoint import CONFIG_FILE, read_json
    from .analysis.baseline import delivered_name, ulmfit_weight
    chosen = [] if off else [str(d) for d in dirs if (Path(d) / CONFIG_FILE).is_file()
                             and read_json(Path(d) / CONFIG_FILE).get("baseline_ensemble") is True]
    for d in chosen:
        weight = ulmfit_weight(read_json(Path(d) / CONFIG_FILE))
        print(f"ulmfit: {d}: answering with {delivered_name(weight)}, as its run chose on validation "
              "(--no-baseline: ULMFiT alone)", file=sys.stderr)
    return chosen


def predict(args) -> dict:
    """Texts as arguments: a line per text and every probability in the JSON. --file: a line per text (or the
    --out file) and a JSON of counts only, however long the file."""
    from .data import readers
    from .predict import ensemble_proba, prediction_dicts
    n_dirs = 0                            # the leading arguments that are dirs; "" is a text, not "."
    while n_dirs < len(args.dirs) and args.dirs[n_dirs] and _is_dir(args.dirs[n_dirs]):
        n_dirs += 1
    dirs, texts = [Path(d) for d in args.dirs[:n_dirs]], list(args.dirs[n_dirs:])
    if not dirs:
        raise UlmfitError(f"no model dir among {args.dirs[:3]}: the first argument must be a classifier dir")
    if args.file:
        if texts:
            raise UlmfitError("pass texts either as arguments or with --file, not both")
        if args.out:                      # before anything is read or computed
            check_output_file(args.out, "--out", inputs=[args.file])
        texts, rows, header = readers.read_for_prediction(args.file, list(args.text_col))
        if args.out:
            _refuse_taken_columns(args.file, header, PREDICTION_COLUMNS)      # before the models run
    elif args.out:
        raise UlmfitError("--out goes with --file")
    if not texts:
        raise UlmfitError("no texts to classify: pass them after the model dir(s) or use --file")
    probs, names = ensemble_proba(dirs, cap_texts(texts, args.max_chars), args.batch_size,
                                  baseline=not args.no_baseline, int8=args.int8,
                                  max_tokens=args.max_tokens)
    predictions = prediction_dicts(names, probs, digits=6)
    if args.out:
        _write_predictions(args.out, args.file, rows, header, predictions, names)
        _with_baseline(dirs, args.no_baseline)       # said once the answers are written (an error is one line)
    else:
        _with_baseline(dirs, args.no_baseline)
        for text, pred in zip(texts, predictions):      # one line per text, however many lines the text has
            print(f"{pred['label']}\t{pred['probabilities'][pred['label']]:.4f}\t{' '.join(text.split())[:80]}")
    if not args.file:
        return {"predictions": predictions}
    counts = dict.fromkeys(names, 0)
    for pred in predictions:
        counts[pred["label"]] += 1
    return {**({"out": str(args.out)} if args.out else {}), "n": len(texts), "labels": counts}


def _is_dir(arg: str) -> bool:
    try:
        return Path(arg).is_dir()
    except OSError:                       # a text too long to be a file name (ENAMETOOLONG) is a text
        return False


PREDICTION_COLUMNS = ("prediction", "probability")      # then p_<label> for each class


def _refuse_taken_columns(source, header: list[str], added) -> None:
    taken = [c for c in added if c in header]
    if taken:
        raise UlmfitError(f"{source} already has a column {taken[0]!r}; predict --out adds the columns prediction, "
                          "probability and p_<label> for each class: rename it in the input")


def _write_predictions(path: Path, source, rows: list[dict], header: list[str], predictions, names) -> None:
    """Every input column, then prediction, probability (of the prediction) and p_<label> for each class: CSV,
    or TSV / JSONL by the suffix of `path`."""
    import io
    import json
    from .checkpoint import atomic_write_bytes
    added = [*PREDICTION_COLUMNS, *(f"p_{n}" for n in names)]
    _refuse_taken_columns(source, header, added)
    table = [{**{c: row[c] for c in header if c in row}, "prediction": pred["label"],
              "probability": pred["probabilities"][pred["label"]],
              **{f"p_{n}": pred["probabilities"][n] for n in names}} for row, pred in zip(rows, predictions)]
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in table)
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter="\t" if suffix == ".tsv" else ",")
        writer.writerow(header + added)
        for row in table:                 # JSONL input: a nested value is written as JSON
            writer.writerow([json.dumps(v) if isinstance(v, (dict, list)) else v
                             for v in (row.get(c) for c in header + added)])
        data = buffer.getvalue()
    atomic_write_bytes(path, data.encode("utf-8"))


def explain(args) -> dict:
    from .analysis.explain import attributions, to_text
    from .predict import load_classifier
    model, text = load_classifier(args.dir, baseline=False), cap_texts([args.text], args.max_chars)[0]
    with progress(model, [text], "explain", passes=args.steps + 2):
        expl = attributions(model, text, target=args.target, steps=args.steps)
    delivered = _with_baseline([args.dir], False)
    if delivered:                         # the run dir's answers mix in TF-IDF + LR; these attributions do not
        print(f"ulmfit: these are ULMFiT's own attributions and probability; `ulmfit predict` on {args.dir} "
              "answers with the mix above", file=sys.stderr)
    print(to_text(expl))
    return {"label": expl.label, "probability": round(expl.probability, 6), "tokens": expl.tokens,
            "scores": [round(s, 6) for s in expl.scores], "delta": round(expl.delta, 6)}


def generate(args) -> dict:
    from .predict import generate as sample, load_language_model
    check_finite(args.temperature, "--temperature")
    check_seed(args.seed, "--seed")
    for flag, value in (("--temperature", args.temperature), ("--top-k", args.top_k), ("--n-words", args.n_words)):
        if value < 0:
            raise UlmfitError(f"{flag} must be >= 0, got {value}")
    model = load_language_model(args.dir, int8=args.int8)
    text = sample(model, args.prompt, args.n_words, args.temperature, args.top_k, args.seed)
    print(text)
    return {"text": text}


def export(args) -> dict:
    from .apps.export import export_classifier
    check_output_dir(args.out, "--out", inputs=[args.dir])
    return export_classifier(args.dir, args.out, int8=args.int8, baseline=not args.no_baseline)


def serve(args) -> dict:
    from .apps.serve import ServeConfig, serve as run_server
    return run_server(args.dir, ServeConfig(host=args.host, port=args.port, int8=args.int8,
                                            baseline=not args.no_baseline, max_batch=args.max_batch,
                                            max_wait_ms=args.max_wait_ms, max_texts=args.max_texts,
                                            max_chars=args.max_chars, explain_steps=args.explain_steps,
                                            threads=args.threads))
