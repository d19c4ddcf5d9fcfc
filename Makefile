# The two quickstart commands:
#   make lab    set everything up, make the toy faces, open the course in JupyterLab
#   make test   set everything up, run the unit tests and every notebook in smoke mode
# On a Linux machine without an NVIDIA GPU, `make lab CPU=1` installs the CPU-only PyTorch first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
# Jupyter refuses to run as root (a container, Colab-like VMs) unless told it may.
ROOT_FLAG = $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: setup lab test toyfaces bench stamp clean student

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed; found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "Installing PyTorch and the course's packages into $(VENV)/: $(if $(CPU),about 1 GB (CPU-only PyTorch),about 5 GB with PyTorch's CUDA libraries ('make lab CPU=1' installs the 1 GB CPU-only build)). This takes several minutes; it happens only once."
	$(if $(CPU),$(BIN)/python -m pip install --quiet torch torchvision --index-url $(TORCH_CPU_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[lab,test]"
	@echo "Installed. The environment is $(VENV)/; 'make clean' removes it."
	@touch $@

toyfaces: setup
	$(BIN)/python -m helpers.toyfaces

lab: setup toyfaces
	@echo "Starting JupyterLab on the course. Open the http://localhost:8888/lab?token=... address it prints"
	@echo "below in your browser; Ctrl-C here stops it."
	$(BIN)/jupyter lab notebooks/ $(ROOT_FLAG)

test: setup
	SMOKE=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest notebooks tests --nbval-lax -n 2 --dist loadfile --durations=25

bench: setup
	$(BIN)/python -m helpers.benchmark data

# Re-write every notebook's Colab badge and setup cell, and the README's, from helpers/colab.py.
stamp:
	$(PYTHON) -m helpers.colab

# Student copies of the notebooks in student/notebooks/ (git-ignored): every exercise's solution
# (between nbgrader's ### BEGIN SOLUTION / ### END SOLUTION) replaced by a stub. Needs only Python.
# STUDENT_REPO=owner/name (and STUDENT_BRANCH=...): the repository where the copies are published, which
# their Colab badges and setup cells open; without it they have no Colab link.
student:
	$(PYTHON) -m helpers.student $(if $(STUDENT_REPO),--repo $(STUDENT_REPO)) $(if $(STUDENT_BRANCH),--branch $(STUDENT_BRANCH))

clean:
	rm -rf $(VENV) data/cache data/toyfaces-smoke runs

# The course on a GPU in one prepared run (about 9 min): speed against the plain way, real-face training,
# Colab estimate; writes to $OUT (default outputs/gpu-check) and prints one table last. Reads the real faces
# from real/UTKFace (git-ignored; GPU_CHECK_FACES=DIR for another folder). SMOKE=1: the CPU check (~30 s).
# No `setup` prerequisite: the GPU machine has no network; it runs the venv's python if there is one.
.PHONY: gpu-check
gpu-check:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) -u -m helpers.gpu_check
