# greenhouse-export: one image for every process (worker, migrate, flower, metrics, sandbox, the CLI).
# Dependencies come from the runtime lock with their hashes (requirements/lock.txt, made by scripts/lock); the
# project itself is then installed without dependencies, so nothing unlocked enters the image. No secret is
# baked in: GHX_SECRET_KEY, the database password and Flower's credentials come from the environment at run
# time (docker-compose.yml). Build: `docker build -t greenhouse-export .`

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The project as a wheel, built apart so the final image holds no source tree and no build leftovers.
FROM base AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY producer/ producer/
COPY shared/ shared/
COPY workers/ workers/
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM base
# The resume's fonts (requirements/fonts.txt), from Debian's packages.
COPY requirements/fonts.txt /tmp/fonts.txt
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends $(sed -e 's/#.*//' /tmp/fonts.txt) \
    && rm -rf /var/lib/apt/lists/* /tmp/fonts.txt
# Locked dependencies first: this layer is rebuilt only when the lock changes.
COPY requirements/lock.txt /tmp/lock.txt
RUN pip install --require-hashes -r /tmp/lock.txt && rm /tmp/lock.txt
COPY --from=build /wheels/ /tmp/wheels/
RUN pip install --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels
# A user of its own; its home is the working directory, writable for the defaults that keep files in the
# working directory (the SQLite store, the embedded broker's socket) when run without a deployment around it.
RUN useradd --create-home --home-dir /home/ghexport --uid 10001 --user-group ghexport
USER ghexport
WORKDIR /home/ghexport
ENTRYPOINT ["ghexport"]
# The process a deployment runs most (and scales): a worker. Other commands replace it, e.g.
# `docker run --rm greenhouse-export keygen` or `docker compose run --rm worker status BATCH_ID`.
CMD ["worker"]
