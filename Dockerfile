# cajal container image: `cajald` (the entrypoint) and `cajal` (Katib trials, KFP steps,
# MPIJob launchers and workers).
#
#   docker build -t cajal:cpu .                                  # CPU (default)
#   docker build --build-arg VARIANT=gpu -t cajal:gpu .          # CUDA 13 + cuDNN 9
#   buildah bud --isolation chroot --build-arg BUILD_IMAGE=... --build-arg BASE_IMAGE=... .
#
# Stages: build-cpu / build-gpu compile on Debian 12 with the repository's own scripts
# (scripts/setup.sh, scripts/build.sh); runtime-cpu / runtime-gpu hold only the runtime
# libraries; the last stage picks one by VARIANT. docs/container-image.md explains the
# choices and how the offline test (scripts/image-test.sh) builds it from a local base image.
ARG VARIANT=cpu
ARG BUILD_IMAGE=debian:12
ARG BASE_IMAGE=debian:12-slim
# NVIDIA's images: the toolkit (nvcc, headers) for the GPU build, cuDNN 9 + CUDA 13 libraries
# for the GPU runtime. Only pulled when VARIANT=gpu.
ARG CUDA_DEVEL_IMAGE=nvidia/cuda:13.0.0-cudnn-devel-ubuntu24.04
ARG CUDA_RUNTIME_IMAGE=nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04

# ---- build ---------------------------------------------------------------------------------
FROM ${BUILD_IMAGE} AS build-cpu
WORKDIR /src
COPY . .
RUN scripts/setup.sh && rm -rf /var/lib/apt/lists/* \
    && rm -rf build && scripts/build.sh \
    && install -D -m 0755 build/bin/cajal /out/usr/local/bin/cajal \
    && install -D -m 0755 build/bin/cajald /out/usr/local/bin/cajald \
    && install -d /out/usr/share/cajal/examples && cp examples/*.yaml /out/usr/share/cajal/examples/

FROM ${CUDA_DEVEL_IMAGE} AS cuda-devel

# The same Debian 12 build with the CUDA toolkit at /usr/local/cuda, where CMake looks for
# nvcc (CAJAL_CUDA defaults to ON when it is found) and cuDNN beside it.
FROM ${BUILD_IMAGE} AS build-gpu
COPY --from=cuda-devel /usr/local/cuda/ /usr/local/cuda/
COPY --from=cuda-devel /usr/include/x86_64-linux-gnu/cudnn*.h /usr/local/cuda/include/
COPY --from=cuda-devel /usr/lib/x86_64-linux-gnu/libcudnn* /usr/local/cuda/lib64/
ENV PATH=/usr/local/cuda/bin:${PATH}
WORKDIR /src
COPY . .
RUN scripts/setup.sh && rm -rf /var/lib/apt/lists/* \
    && rm -rf build && scripts/build.sh \
    && install -D -m 0755 build/bin/cajal /out/usr/local/bin/cajal \
    && install -D -m 0755 build/bin/cajald /out/usr/local/bin/cajald \
    && install -d /out/usr/share/cajal/examples && cp examples/*.yaml /out/usr/share/cajal/examples/

# ---- runtime -------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime-base
# Runtime libraries of cajal and cajald (Debian 12 names; docs/container-image.md lists why
# each is here), the Fashion-MNIST data set, so presets and examples work offline, and what
# the MPI Operator's MPIJobs need: OpenMPI (mpirun, orted), the ssh client (launcher) and
# sshd (workers), run as the non-root user with the configuration files copied below. The
# host keys the openssh-server package generates are removed: the workers use the MPIJob's.
# The user's login shell is /bin/sh, not nologin: sshd runs the command mpirun sends (orted)
# through it.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 libdnnl2 ocl-icd-libopencl1 \
       libgomp1 libyaml-cpp0.7 libsqlite3-0 libprometheus-cpp-pull1.0 \
       libprometheus-cpp-core1.0 zlib1g libssl3 libonnx1 dataset-fashion-mnist \
       openmpi-bin openssh-client openssh-server \
    && rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_* \
    && groupadd --system --gid 10001 cajal \
    && useradd --system --uid 10001 --gid cajal --home-dir /var/lib/cajal --no-create-home \
       --shell /bin/sh cajal \
    && install -d -o cajal -g cajal -m 0750 /var/lib/cajal
COPY deploy/training-operator/image/cajal_sshd_config /etc/ssh/cajal_sshd_config
COPY deploy/training-operator/image/cajal-mpi-ssh.conf /etc/ssh/ssh_config.d/cajal-mpi.conf
EXPOSE 50051 9464
VOLUME /var/lib/cajal
WORKDIR /var/lib/cajal
USER 10001:10001
ENTRYPOINT ["cajald"]
CMD ["--data_dir=/var/lib/cajal", "--port=50051", "--metrics_port=9464"]

FROM runtime-base AS runtime-cpu
COPY --from=build-cpu /out/ /

FROM ${CUDA_RUNTIME_IMAGE} AS cuda-runtime

# The CPU runtime plus NVIDIA's CUDA and cuDNN libraries: the binaries are linked against
# Debian 12's gRPC/protobuf/oneDNN, so the runtime stays Debian 12 rather than Ubuntu. The
# driver (libcuda.so) is mounted by the NVIDIA container toolkit on GPU nodes; without a GPU
# cajald starts and trains on the CPU.
FROM runtime-base AS runtime-gpu
USER root
COPY --from=cuda-runtime /usr/local/cuda/lib64/ /usr/local/cuda/lib64/
COPY --from=cuda-runtime /usr/lib/x86_64-linux-gnu/libcudnn* /usr/local/cuda/lib64/
RUN echo /usr/local/cuda/lib64 > /etc/ld.so.conf.d/cuda.conf && ldconfig
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY --from=build-gpu /out/ /
USER 10001:10001

# ---- the image -------------------------------------------------------------------------------
# hadolint ignore=DL3006
FROM runtime-${VARIANT}
LABEL org.opencontainers.image.title="cajal" \
      org.opencontainers.image.description="Native C++ training microservice: cajald (gRPC) and cajal train"
