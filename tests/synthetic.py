"""Synthetic labelled texts shared by the tests that train tiny classifiers (a topic word list per label)."""
import random

TOPICS = {
    "sport": "match goal team player score coach league win season striker referee".split(),
    "food": "recipe bake flour sugar oven taste dinner spice butter salad kitchen".split(),
}
COMMON = "the a of and to in is was with for on this that".split()


def labelled_topics(n: int, seed: int) -> tuple[list[str], list[str]]:
    """n synthetic sentences, each drawing half its words from its topic's list, and the topics as labels."""
    rng = random.Random(seed)
    labels = [rng.choice(sorted(TOPICS)) for _ in range(n)]
    texts = [" ".join(rng.choice(TOPICS[y] if rng.random() < 0.5 else COMMON) for _ in range(rng.randint(5, 12)))
             .capitalize() + "." for y in labels]
    return texts, labels


def pretrain_tiny(root, seed: int = 5, backwards: bool = False):
    """A tiny pretrained LM on synthetic topic sentences in `root`/pre (seconds), via the CLI."""
    from ulmfit.cli import main
    texts, _ = labelled_topics(600, seed=seed)
    (root / "corpus.txt").write_text("\n".join(texts))
    assert main(["pretrain", "--train", str(root / "corpus.txt"), "--out", str(root / "pre"), "--preset", "tiny",
                 "--max-steps", "8", "--set", "tokenizer.vocab_size=60", "--set", "batch_size=8"]
                + (["--backwards"] if backwards else [])) == 0
    return root / "pre"
