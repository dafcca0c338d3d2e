"""Moving a pretrained LM to the target corpus's word vocabulary (fastai's match_embeds, ULMFiT §3.2)."""
import torch

from ulmfit.predict import LanguageModel
from ulmfit.cli import main
from ulmfit.config import ModelConfig
from ulmfit.text.tokenizer import Tokenizer
from ulmfit.pretrained.transfer import match_embeddings, vocabulary

OLD = ["<pad>", "<unk>", "<s>", "</s>", "the", "cat", "sat"]
NEW = ["<pad>", "<unk>", "<s>", "</s>", "sat", "meme", "the"]


def _state():
    torch.manual_seed(0)
    return LanguageModel(ModelConfig(vocab_size=len(OLD), emb_size=4, hidden_size=6, n_layers=2)).state_dict()


class TestMatchEmbeddings:
    def test_shared_words_keep_their_rows(self):
        """A word in both vocabularies carries its embedding row to its new id."""
        state = _state()
        new, _ = match_embeddings(state, OLD, NEW)
        emb = new["encoder.embedding.weight"]
        assert torch.equal(emb[4], state["encoder.embedding.weight"][6])      # "sat"
        assert torch.equal(emb[6], state["encoder.embedding.weight"][4])      # "the"

    def test_new_words_get_the_mean_row_and_mean_bias(self):
        """A word new to the target starts from the mean embedding row and the mean decoder bias."""
        state = _state()
        state["decoder.bias"] = torch.arange(len(OLD), dtype=torch.float32)
        new, n_new = match_embeddings(state, OLD, NEW)
        assert n_new == 1
        assert torch.allclose(new["encoder.embedding.weight"][5], state["encoder.embedding.weight"].mean(0))
        assert new["decoder.bias"][5] == state["decoder.bias"].mean()

    def test_tied_decoder_stays_one_tensor(self):
        """The tied decoder weight is re-indexed once and still shares storage with the embedding."""
        new, _ = match_embeddings(_state(), OLD, NEW)
        assert new["decoder.weight"].data_ptr() == new["encoder.embedding.weight"].data_ptr()
        model = LanguageModel(ModelConfig(vocab_size=len(NEW), emb_size=4, hidden_size=6, n_layers=2))
        model.load_state_dict(new)                                             # shapes fit the new vocabulary


def test_word_level_finetune_adopts_the_target_vocabulary(tmp_path):
    """Fine-tuning a word-level LM on text with new words trains a target vocabulary that contains them."""
    (tmp_path / "general.txt").write_text("\n".join(["the cat sat on the mat and the dog ran"] * 200))
    (tmp_path / "target.txt").write_text("\n".join(["the meme went viral on the internet today"] * 200))
    common = ["--preset", "tiny", "--max-steps", "2", "--set", "batch_size=4"]
    assert main(["pretrain", "--train", str(tmp_path / "general.txt"), "--out", str(tmp_path / "pre"),
                 "--set", "tokenizer.model_type=word", "--set", "tokenizer.vocab_size=16", *common]) == 0
    assert main(["finetune", "--pretrained", str(tmp_path / "pre"), "--train", str(tmp_path / "target.txt"),
                 "--out", str(tmp_path / "ft"), *common]) == 0
    before, after = vocabulary(Tokenizer.load(tmp_path / "pre")), vocabulary(Tokenizer.load(tmp_path / "ft"))
    assert "▁meme" not in before and "▁meme" in after
    assert LanguageModel.from_pretrained(tmp_path / "ft").config.vocab_size == len(after)
