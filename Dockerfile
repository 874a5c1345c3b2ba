# syntax=docker/dockerfile:1
# lensgate image: GraphQL logit-lens gateway on ONNX Runtime, CUDA execution provider when a GPU is
# visible (docker run --gpus all), CPU otherwise. Models are not baked in except the small default
# one; mount checkpoints read-only at /models.
#
#   docker build -t lensgate .
#   docker run --gpus all -p 4000:4000 -v "$PWD/hf-models:/models:ro" lensgate \
#     --model gpt2=/models/gpt2 --device auto

ARG NODE_VERSION=20.19.5
# ORT 1.29's CUDA provider (below) is built for CUDA 13: libcudart/libcublas/libcublasLt 13, libcurand 10.
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04

# ---- build stage: production node_modules + the CUDA provider libraries -------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
# onnxruntime-node's install script would download CUDA binaries from a feed outside npm; skip it
# and take the provider libraries from the npm package that ships them for ORT 1.29.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
RUN npm pack com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 \
    && tar -xzf com.github.asus4.onnxruntime.linux-x64-gpu-0.4.9.tgz \
    && find package -name 'libonnxruntime_providers_*.so' \
         -exec cp {} node_modules/onnxruntime-node/bin/napi-v6/linux/x64/ \; \
    && rm -rf package ./*.tgz
COPY tsconfig.json ./
COPY src ./src
COPY resolvers ./resolvers
COPY schema ./schema
COPY models ./models

# ---- runtime stage: CUDA runtime libraries + node, non-root -------------------------------------
FROM ${CUDA_IMAGE} AS runtime
COPY --from=build /usr/local/bin/node /usr/local/bin/node
RUN groupadd --system --gid 10001 lensgate \
    && useradd --system --uid 10001 --gid lensgate --home-dir /app --shell /usr/sbin/nologin lensgate \
    && mkdir /models /data && chown lensgate:lensgate /models /data
WORKDIR /app
COPY --from=build --chown=lensgate:lensgate /app /app
ENV NODE_ENV=production \
    PORT=4000 \
    LENSGATE_STORE=/data/lensgate.db
VOLUME ["/models", "/data"]
USER lensgate
EXPOSE 4000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||4000)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "--import", "tsx", "src/cli/serve.ts", "--host", "0.0.0.0"]
# No --model: serve the embedded default model (models/tiny-facts-gpt2).
CMD []
