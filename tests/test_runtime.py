"""Capability detection (issue 14 §1): a precision the machine cannot run is refused in one line, never a crash."""
import pytest
import torch

from ulmfit.cli import main
from ulmfit.errors import UlmfitError
from ulmfit.runtime import DISABLE_BF16_ENV, cpu_flags, cpu_name, precision_problem, setup_runtime


def test_fp32_runs_everywhere():
    assert precision_problem("fp32", "cpu") is None


def test_fp16_on_cpu_names_cuda():
    assert "CUDA" in precision_problem("fp16", "cpu")


def test_bf16_switched_off_by_the_environment_says_so(monkeypatch):
    monkeypatch.setenv(DISABLE_BF16_ENV, "1")
    assert DISABLE_BF16_ENV in precision_problem("bf16", "cpu")


def test_setup_runtime_refuses_unavailable_bf16(monkeypatch):
    monkeypatch.setenv(DISABLE_BF16_ENV, "1")
    with pytest.raises(UlmfitError, match="--precision bf16 is not available"):
        setup_runtime("bf16", device="cpu")


def test_cli_bf16_without_support_is_one_line_and_exit_2(monkeypatch, tmp_path, capsys):
    """On a CPU without bf16 (imitated), `--precision bf16` stops before any work: exit 2, one line."""
    monkeypatch.setenv(DISABLE_BF16_ENV, "1")
    corpus = tmp_path / "c.txt"
    corpus.write_text("a few words of text\n" * 50)
    threads = torch.get_num_threads()
    try:
        code = main(["pretrain", "--train", str(corpus), "--preset", "tiny", "--out", str(tmp_path / "o"),
                     "--precision", "bf16", "--max-steps", "1"])
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "bf16" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.bf16
def test_bf16_reported_available_really_runs_an_lstm():
    """Where the check says bf16 runs, a bf16 LSTM forward and backward do run (the check is not optimistic)."""
    lstm = torch.nn.LSTM(4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = lstm(torch.randn(3, 2, 4))
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16


def test_cpu_description_is_recorded():
    """Benchmarks print the CPU model and its ISA flags beside each figure."""
    assert cpu_name() and isinstance(cpu_flags(), list)
