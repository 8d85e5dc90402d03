# syntax=docker/dockerfile:1
# decaylab images for the compose stack (docker-compose.yml). Two targets:
#   runtime           the API, the migration, the Ray head and the Ray (GPU) workers: one image, so
#                     every Ray process imports the same decaylab code as the study driver
#   optuna-dashboard  optuna-dashboard with the same Optuna and SQLAlchemy as the runtime
#
# Base: python:3.11-slim rather than nvidia/cuda or pytorch/pytorch. The PyPI wheels of
# torch==2.14.1 / torchvision==0.29.1 are CUDA builds that bring the CUDA runtime, cuDNN and NCCL
# as nvidia-* wheels; the one thing they need from outside, the driver (libcuda), is mounted into
# the container by the NVIDIA container toolkit when a service reserves a GPU. A CUDA base image
# would only add a second copy of the CUDA libraries (and a Python of Ubuntu's choosing).
#
# No slim API image: pyproject.toml makes torch a dependency of the package, so `pip install .`
# cannot leave it out. The API also submits each study as a Ray Job whose entrypoint is the API's
# own interpreter (sys.executable, /opt/venv/bin/python), run on the Ray head: one image makes
# that path exist there with the same packages.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# the dependencies first, in their own layer: a code change does not reinstall torch (~6 GB)
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip install -r requirements.txt
COPY README.md ./
COPY service ./service
COPY studies ./studies
COPY workers ./workers
# a regular (not editable) install: the code lives in site-packages, independent of /src
RUN pip install --no-deps . && pip freeze > /opt/venv/constraints.txt

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --create-home --uid 1000 decaylab \
    && mkdir -p /data /var/lib/decaylab \
    && chown decaylab:decaylab /data /var/lib/decaylab
COPY --from=build /opt/venv /opt/venv
# DECAYLAB_HOME and DECAYLAB_DATA_DIR are absolute: the API passes them to the study driver on
# the Ray head, and the driver to the trials on the workers, so they must mean the same there.
# A fresh named volume mounted on /data takes this directory's owner, so the user can write it.
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/decaylab \
    PYTHONUNBUFFERED=1 \
    DECAYLAB_HOME=/var/lib/decaylab \
    DECAYLAB_DATA_DIR=/data \
    RAY_USAGE_STATS_ENABLED=0 \
    TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1
USER decaylab
WORKDIR /home/decaylab
# Ray's dashboard probes cloud-metadata addresses unless $HOME/ray_bootstrap_config.yaml exists
RUN printf '{}\n' > /home/decaylab/ray_bootstrap_config.yaml
CMD ["decaylab", "serve"]

FROM ${PYTHON_IMAGE} AS optuna-dashboard
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /opt/venv/constraints.txt /tmp/constraints.txt
# the runtime's Optuna, SQLAlchemy and psycopg exactly (Optuna refuses a database whose schema
# version is not its own); the dashboard's other dependencies resolve freely
RUN grep -Ei '^(optuna|sqlalchemy|alembic|psycopg|psycopg-binary)==' /tmp/constraints.txt > /tmp/pins.txt \
    && pip install -c /tmp/pins.txt optuna-dashboard optuna 'psycopg[binary]' \
    && rm /tmp/constraints.txt /tmp/pins.txt
USER nobody
EXPOSE 8080
ENTRYPOINT ["optuna-dashboard"]
