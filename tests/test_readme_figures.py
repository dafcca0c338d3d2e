"""Every figure in the tables of README.md and benchmarks/README.md is in the results file named beside it,
and every relative link in the README, benchmarks/README.md and docs/ (its sub-folders too) points at a file that exists.

A figure is a number in a table row outside code spans, section references (§3.2, eq. 3, Fig. 3, Table 2)
and version strings (2.8.12): percentages, perplexities, times, rates, counts. It is found when the results
file holds a number that rounds to it at the figure's own precision (68.5% matches 0.685 or 68.46; 9.3 min
matches a wall time of 9:19.4; 2 h 7 min matches "2 h 7 min" or 127). The files searched are those the row
names (`name.txt` under benchmarks/results/), else those the paragraph above the table names, else all.
"""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CHECKED = [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]
LINKED = CHECKED + sorted((ROOT / "docs").rglob("*.md"))
NOT_FIGURES = {"Technique index"}           # README sections whose tables map code, not measurements

NUMBER = re.compile(r"(?<![\w.\-])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(k\b)?(?![\w.]*\d)")
NOISE = re.compile(r"`[^`]*`|\]\([^)]*\)|§[\d.–-]+|\d+\.\d+\.\d+"         # code, link targets, §3.2, 2.8.12
                   r"|\b(?:eq|Fig|Table|Tables)\.? \d+(?:[–-]\d+)?")               # eq. 3, Fig. 3, Tables 2-3
HOURS = re.compile(r"(\d+) h (\d+) min")
FILE_NAME = re.compile(r"\b([\w-]+\.(?:txt|jsonl))\b")
CLOCK = re.compile(r"\b(\d+):(\d{2}(?:\.\d+)?)\b")            # a wall time as m:ss.s


def figures(row: str) -> list[tuple[str, float, int]]:
    """(as written, value, decimals) of each figure in a table row; "2 h 7 min" is one figure, 127 minutes."""
    text = NOISE.sub(" ", row)
    found = [(m.group(0), 60.0 * int(m.group(1)) + int(m.group(2)), 0) for m in HOURS.finditer(text)]
    for m in NUMBER.finditer(HOURS.sub(" ", text)):
        whole, frac, kilo = m.groups()
        value = float(whole.replace(",", "") + (frac or ""))
        decimals = len(frac) - 1 if frac else 0
        found.append((m.group(0), value * 1000 if kilo else value, decimals - 3 if kilo else decimals))
    return found


def numbers_in(text: str) -> set[float]:
    """Every number a results file holds (22.5k as 22,500), its fractions also as percentages, its m:ss wall
    times as minutes."""
    values = set()
    for m in re.finditer(r"(\d+(?:,\d{3})*(?:\.\d+)?)(k\b)?", text):
        values.add(float(m.group(1).replace(",", "")) * (1000 if m.group(2) else 1))
    values |= {100 * v for v in values if v <= 1}
    values |= {int(m) + float(s) / 60 for m, s in CLOCK.findall(text)}
    return values


def found(figure: tuple[str, float, int], text: str, numbers: set[float]) -> bool:
    written, value, decimals = figure
    if HOURS.fullmatch(written) and " ".join(written.split()) in " ".join(text.split()):
        return True
    tolerance = 0.5 * 10.0 ** -decimals + 1e-9
    return any(abs(v - value) <= tolerance for v in numbers)


def tables(path: Path):
    """(section, caption, rows) per markdown table outside code blocks, the separator row left out; the
    caption is the paragraph just above the table."""
    section, caption, paragraph, rows, out, in_code = "", [], [], [], [], False
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if line.startswith("```"):
            in_code = not in_code
        if in_code or line.startswith("```"):
            continue
        if line.startswith("|"):
            if not set(line) <= set("|-: "):
                rows.append(line)
            continue
        if rows:
            out.append((section, " ".join(caption), rows))
            rows = []
        if line.startswith("#"):
            section, caption, paragraph = line.lstrip("#").strip(), [], []
        elif line.strip():
            paragraph.append(line)
            caption = paragraph
        else:
            paragraph = []                   # a blank line ends a paragraph; `caption` keeps the last one
    return out


def unsourced(path: Path) -> list[str]:
    """One line per figure of `path`'s tables that its results file does not hold or whose file is missing."""
    page = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    everything = sorted(RESULTS.glob("*.txt")) + sorted(RESULTS.glob("*.jsonl"))
    problems = []
    for section, caption, rows in tables(path):
        if section in NOT_FIGURES:
            continue
        fallback = FILE_NAME.findall(caption)
        for row in rows:
            names = FILE_NAME.findall(row) or fallback
            row_figures = figures(row)
            if not row_figures:
                continue
            missing = [n for n in names if not (RESULTS / n).is_file()]
            if missing:
                problems.append(f"{page}: a row names {missing[0]}, not in benchmarks/results/: {row[:80]}")
                continue
            files = [RESULTS / n for n in names] or everything
            text = "\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)
            numbers = numbers_in(text)
            for figure in row_figures:
                if not found(figure, text, numbers):
                    where = ", ".join(names) or "any file under benchmarks/results/"
                    problems.append(f"{page}: {figure[0]!r} is not in {where} (row: {row[:80]}...)")
    return problems


def test_figures_reads_percentages_perplexities_times_and_skips_code():
    row = "| demo | **99.33%** (9.3 min) | ppl 24.2 | 2 h 7 min | 171k tok/s | `lr=2e-3` §3.2 fastai 2.8.12 |"
    assert [(w, v) for w, v, _ in figures(row)] == [("2 h 7 min", 127.0), ("99.33", 99.33), ("9.3", 9.3),
                                                    ("24.2", 24.2), ("171k", 171000.0)]


def test_a_figure_matches_its_fraction_rounding_and_wall_clock_forms():
    text = "valid_ulmfit 0.685  wall 9:19.4  2 h 7 min after the LM  171,170 tok/s"
    numbers = numbers_in(text)
    for written in ("68.5%", "9.3 min", "2 h 7 min", "171k"):
        assert all(found(f, text, numbers) for f in figures(f"| {written} |")), written


def test_a_figure_missing_from_its_file_is_reported_by_name(tmp_path):
    page = tmp_path / "README.md"
    page.write_text("| set | ULMFiT |\n|---|---|\n| clickbait | 97.35% in `demo.txt` |\n", encoding="utf-8")
    problems = unsourced(page)
    assert len(problems) == 1 and "'97.35'" in problems[0] and "demo.txt" in problems[0]


def test_a_row_naming_a_results_file_that_does_not_exist_is_reported(tmp_path):
    page = tmp_path / "README.md"
    page.write_text("| set | ULMFiT |\n|---|---|\n| clickbait | 99.33% `no_such.txt` |\n", encoding="utf-8")
    assert "no_such.txt" in " ".join(unsourced(page))


def test_readme_table_figures_are_in_their_results_files():
    assert unsourced(ROOT / "README.md") == []


def test_benchmarks_readme_table_figures_are_in_their_results_files():
    assert unsourced(ROOT / "benchmarks" / "README.md") == []


def test_relative_links_point_at_files_that_exist():
    broken = []
    for page in LINKED:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue                                                    # a URL or an anchor on the page
            path = (page.parent / target.split("#")[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []
