# ulmfit — each stage is one `python -m ulmfit <stage>` line; targets depend on the previous stage's files,
# so `make classify` runs whatever stages are missing and skips the finished ones.
#   make classify DATASET=imdb PRESET=small      make pretrain CORPUS=wikitext103 PRESET=paper (GPU)
#   make classify PRETRAINED=wt103 PRESET=paper BACKWARDS=1 DATASET=imdb   (fastai's recipe from fastai's LM)
PY        ?= python
# Installed only when torch is missing. The CPU wheel on this project's machines (a local wheel); from PyPI on Linux
# the same spec is the multi-GB CUDA build: on a CPU-only machine elsewhere pass
# TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu" (or install torch first).
TORCH_SPEC ?= torch==2.13.0
PRESET    ?= small
CORPUS    ?= wikitext2
DATASET   ?= clickbait
RUNS      ?= runs
BACKWARDS ?= 0
ARGS      ?=
PRETRAIN_ARGS ?=
FINETUNE_ARGS ?=
CLASSIFY_ARGS ?=
ULMFIT     = $(PY) -m ulmfit

# PRETRAINED=wt103: start from fastai's published WikiText-103 LM (ULMFiT §3.1), downloaded once into the cache
# and imported by `ulmfit lm download` (needs spaCy: `pip install -e '.[fastai]'`); the paper-size model wants PRESET=paper
# (on a CPU add ARGS="--precision fp32"). PRETRAINED=DIR: any pretrain run dir, e.g. one `ulmfit lm import` wrote
# (DIR-bwd for BACKWARDS=1).
# Without PRETRAINED, stage 2 starts from the LM that ships with ulmfit (ulmfit-wiki-fwd: 65M words of Wikipedia,
# committed in ulmfit/pretrained/shipped/, no download); PRETRAINED=pretrain: from `make pretrain`'s LM (CORPUS,
# PRESET). `make pretrain` itself always pretrains.
SHIPPED_LMS = ulmfit-wiki-fwd ulmfit-wiki-bwd
PRETRAINED ?= ulmfit-wiki-fwd
PRETRAIN_DIR = $(RUNS)/pretrain-$(CORPUS)-$(PRESET)
ifeq ($(PRETRAINED),wt103)
PRE = $(RUNS)/wt103
TAG = wt103-$(PRESET)
else ifeq ($(PRETRAINED),pretrain)
PRE = $(PRETRAIN_DIR)
TAG = $(PRESET)
else ifneq ($(filter $(PRETRAINED),$(SHIPPED_LMS)),)
PRE = $(PRETRAINED)
PRE_BWD = $(subst -fwd,-bwd,$(PRETRAINED))
PRE_DEP =
TAG = $(PRETRAINED)-$(PRESET)
else
PRE = $(PRETRAINED)
TAG = $(notdir $(PRETRAINED))-$(PRESET)
endif
PRE_DEP ?= $(PRE)/model.pt
PRE_BWD ?= $(PRE)-bwd
PRE_BWD_DEP = $(if $(PRE_DEP),$(PRE_BWD)/model.pt,)
FT  = $(RUNS)/finetune-$(DATASET)-$(TAG)
CLS = $(RUNS)/classify-$(DATASET)-$(TAG)
CLS_DIRS = $(CLS)$(if $(filter 1,$(BACKWARDS)), $(CLS)-bwd,)

.PHONY: help install deps install-fastai test test-all smoke demo pretrain finetune classify fit evaluate bench gpu-check notebooks notebooks-publish clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: PRESET=$(PRESET) CORPUS=$(CORPUS) DATASET=$(DATASET) BACKWARDS=$(BACKWARDS) RUNS=$(RUNS) PRETRAINED=$(PRETRAINED)"

install:  ## install ulmfit with the dev extras (installs TORCH_SPEC first when torch is missing)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install -e ".[dev]"

# What `make demo` and `make test` need: this clone's ulmfit installed, and its requirements and dev extras. When
# any is missing (a fresh venv), they run `make install` first. The check imports nothing (find_spec under -I, so
# the current directory does not count as an install): it costs a few hundredths of a second.
NEEDS = torch numpy sentencepiece tqdm sklearn matplotlib pytest hypothesis nbclient nbformat ipykernel
deps:
	@$(PY) -I -c "import importlib.util as u, pathlib, sys; s = u.find_spec('ulmfit'); \
	sys.exit(not (s and s.origin and pathlib.Path(s.origin).resolve().parents[1] == pathlib.Path.cwd().resolve() \
	and all(map(u.find_spec, sys.argv[1:]))))" $(NEEDS) 2>/dev/null || $(MAKE) --no-print-directory install PY="$(PY)"

# fastai itself, for the equivalence tests and benchmarks (tests/test_fastai_*.py skip without it). Its text path
# never imports torchvision, which would pull another torch build: so --no-deps, then its other requirements.
FASTAI_REQS = "fastdownload>=0.0.8,<2" "fastcore>=2.2.22" "fasttransform>=0.0.3" "fastprogress>=0.2.4" pandas \
              requests pyyaml "pillow>=9.0.0" scipy scikit-learn matplotlib "plum-dispatch<2.10" cloudpickle \
              packaging "spacy<4"
install-fastai:  ## install fastai 2.8.12 without torchvision (for the equivalence tests with fastai)
	$(PY) -m pip install --no-deps fastai==2.8.12
	$(PY) -m pip install $(FASTAI_REQS)

test: deps  ## the fast test suite (runs `make install` first when something is missing)
	$(PY) -m pytest

test-all:  ## every test, the slow ones too
	$(PY) -m pytest -m "not gpu"

smoke:  ## a tiny three-stage run (seconds)
	$(MAKE) classify PRESET=tiny PRETRAINED=pretrain RUNS=runs/smoke ARGS="--max-steps 20"

demo: deps  ## pretrain on WikiText-2, then `ulmfit fit` clickbait, within 14 minutes of wall time, with a report
	$(PY) -m ulmfit.apps.demo --runs $(RUNS)/demo $(ARGS)

pretrain: $(PRETRAIN_DIR)/model.pt  ## stage 1: pretrain the LM (CORPUS, PRESET)
finetune: $(FT)/model.pt  ## stage 2: fine-tune the LM on DATASET
classify: $(addsuffix /model.pt,$(CLS_DIRS))  ## stage 3: train the classifier (BACKWARDS=1: + backward model)
	$(ULMFIT) evaluate $(CLS_DIRS) --dataset $(DATASET)

ifeq ($(PRETRAINED),wt103)
$(PRE)/model.pt:
	$(ULMFIT) lm download wt103-fwd --out $(PRE) --force
$(PRE)-bwd/model.pt:
	$(ULMFIT) lm download wt103-bwd --out $(PRE)-bwd --force
endif
$(PRETRAIN_DIR)/model.pt:
	$(ULMFIT) pretrain --dataset $(CORPUS) --preset $(PRESET) --out $(PRETRAIN_DIR) --force $(ARGS) $(PRETRAIN_ARGS)
$(PRETRAIN_DIR)-bwd/model.pt:
	$(ULMFIT) pretrain --dataset $(CORPUS) --preset $(PRESET) --out $(PRETRAIN_DIR)-bwd --force --backwards $(ARGS) $(PRETRAIN_ARGS)
$(FT)/model.pt: $(PRE_DEP)
	$(ULMFIT) finetune --pretrained $(PRE) --dataset $(DATASET) --preset $(PRESET) --out $(FT) --force $(ARGS) $(FINETUNE_ARGS)
$(FT)-bwd/model.pt: $(PRE_BWD_DEP)
	$(ULMFIT) finetune --pretrained $(PRE_BWD) --dataset $(DATASET) --preset $(PRESET) --out $(FT)-bwd --force --backwards $(ARGS) $(FINETUNE_ARGS)
$(CLS)/model.pt: $(FT)/model.pt
	$(ULMFIT) classify --finetuned $(FT) --dataset $(DATASET) --preset $(PRESET) --out $(CLS) --force $(ARGS) $(CLASSIFY_ARGS)
$(CLS)-bwd/model.pt: $(FT)-bwd/model.pt
	$(ULMFIT) classify --finetuned $(FT)-bwd --dataset $(DATASET) --preset $(PRESET) --out $(CLS)-bwd --force --backwards $(ARGS) $(CLASSIFY_ARGS)

MINUTES ?= 15
fit:  ## `ulmfit fit` on DATASET within MINUTES of wall time, from the shipped LM (or PRETRAINED)
	$(ULMFIT) fit --dataset $(DATASET) --minutes $(MINUTES) --pretrained $(PRE) --out $(RUNS)/fit-$(DATASET) --force $(ARGS)

bench:  ## the benchmark scripts (prints figures; writes nothing into tests)
	$(PY) benchmarks/tokenize_throughput.py
	$(PY) benchmarks/lm_throughput.py
	$(PY) benchmarks/classify_throughput.py

gpu-check:  ## one-GPU self-check, < 8 min, one JSON line (copies its data into gpu_data/ first if missing)
	@test -d gpu_data/wikitext2 -a -d gpu_data/clickbait || $(PY) benchmarks/gpu_check.py --prepare
	$(PY) benchmarks/gpu_check.py $(ARGS)

notebooks:  ## execute every notebook top to bottom (QUICK=1 for the CI-sized run)
	$(PY) notebooks/run_all.py

notebooks-publish:  ## full mode: execute every notebook and commit-ready write it WITH outputs to notebooks/*.ipynb
	$(PY) notebooks/build_notebooks.py
	env -u QUICK $(PY) notebooks/run_all.py --publish

clean:  ## remove run dirs and caches
	rm -rf runs .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
