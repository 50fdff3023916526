# The blockgate runtime in an E2B sandbox: `python -m runtime.server` on port 8000,
# started by the template's start command so a sandbox is warm the moment it boots.
#
# Build context: the REPOSITORY ROOT, not template/ (the runtime imports the Python
# halves of serializers/). Built by `bun run template/build.ts` (E2B's Template SDK reads
# this file) or, with the E2B CLI, from the root with template/e2b.toml.
#
# E2B turns each instruction into a build step of its own and joins RUN arguments with
# spaces: keep RUN lines free of `\(` and of quoted strings with spaces in them.
FROM python:3.11-slim-bookworm

# curl: the ready check polls /health with it.
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*

# The requirements first: they change less often than the code, so this layer stays cached.
COPY template/requirements.txt /opt/blockgate/template/requirements.txt
RUN pip install --no-cache-dir --disable-pip-version-check -r /opt/blockgate/template/requirements.txt

COPY template/runtime /opt/blockgate/template/runtime
COPY serializers /opt/blockgate/serializers
# Keep only the Python the runtime imports: no TypeScript halves, golden vectors or tests.
# Then compile it, so the first import in a fresh sandbox does not.
RUN rm -rf /opt/blockgate/serializers/*/vectors /opt/blockgate/serializers/testing.py \
 && find /opt/blockgate -name __pycache__ -prune -exec rm -rf {} + \
 && find /opt/blockgate -type f -name '*.ts' -delete \
 && find /opt/blockgate -type f -name 'test_*.py' -delete \
 && find /opt/blockgate -type f -name conftest.py -delete \
 && python -m compileall -q /opt/blockgate

# The same environment a local worker gets (src/backends/local/worker.ts): the runtime
# and the serializers importable; one BLAS thread (the sandbox is the unit of parallelism);
# LARGE_BUFFER_MALLOC, so large frames are not returned to the kernel and faulted in again
# on every run. E2B applies ENV at build time only: the start command in e2b.toml sets
# these again for the server process.
ENV PYTHONPATH=/opt/blockgate/template:/opt/blockgate \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    MALLOC_MMAP_THRESHOLD_=536870912 \
    MALLOC_TRIM_THRESHOLD_=1073741824

# The server needs no privileges; the runtime files stay root-owned and read-only to it.
RUN useradd --create-home --uid 10001 --shell /bin/bash blockgate
USER blockgate
WORKDIR /opt/blockgate/template
# Fail the build, not the first sandbox, if the runtime cannot import as the server's user.
RUN python -m runtime.server --help > /dev/null
