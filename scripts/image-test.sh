#!/usr/bin/env bash
# Builds the container image offline and runs `cajal train` inside it.
#
#   scripts/image-test.sh            # as root (or through sudo); takes 20+ minutes the first time
#
# No registry is reached: the base image is made here with debootstrap (Debian 12 bookworm,
# minbase) and imported into buildah's storage, then the Dockerfile is built with
# `buildah bud --isolation chroot` with that image as BUILD_IMAGE and BASE_IMAGE. Inside the
# result (`buildah run --isolation chroot`, as the image's non-root user) it checks the
# binaries' libraries, /bin/sh, the data set and examples, and trains the builtin xor data
# set. Debian's packages are still downloaded by debootstrap and apt-get.
# docs/container-image.md explains each step. Prints `N passed, M failed`.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}  # works in any container or VM, unlike overlay
base=localhost/cajal-base:bookworm
image=localhost/cajal:image-test
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
passed=0
failed=0
check() {  # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then
    echo "ok   $what"
    passed=$((passed + 1))
  else
    echo "FAIL $what"
    failed=$((failed + 1))
  fi
}

# The image tools are not in scripts/setup.sh: only this (slow) test needs them.
need=()
command -v buildah >/dev/null || need+=(buildah)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  echo "image-test: installing ${need[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# 1. The base image: debootstrap a minimal bookworm and import it as an image (once).
if ! "${sudo[@]}" buildah inspect --type image "$base" >/dev/null 2>&1; then
  rootfs=$(mktemp -d /var/tmp/cajal-rootfs.XXXXXX)
  trap '"${sudo[@]}" rm -rf "$rootfs"' EXIT
  echo "image-test: debootstrap --variant=minbase bookworm ($mirror)"
  "${sudo[@]}" debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  "${sudo[@]}" rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  ctr=$("${sudo[@]}" buildah from scratch)
  "${sudo[@]}" tar -C "$rootfs" -cf "$rootfs.tar" .
  "${sudo[@]}" buildah add "$ctr" "$rootfs.tar" /
  "${sudo[@]}" rm -f "$rootfs.tar"
  "${sudo[@]}" buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd /bin/bash "$ctr"
  "${sudo[@]}" buildah commit --rm "$ctr" "$base" >/dev/null
fi
check "base image $base (debootstrap bookworm minbase)" "${sudo[@]}" buildah inspect --type image "$base" >/dev/null

# 2. The image, from the Dockerfile, with the local base for both stages.
start=$SECONDS
if "${sudo[@]}" buildah bud --isolation chroot --pull=never \
  --build-arg BUILD_IMAGE="$base" --build-arg BASE_IMAGE="$base" --build-arg VARIANT=cpu \
  -t "$image" . >/tmp/cajal-image-build.log 2>&1; then
  built=true
else
  built=false
  tail -n 40 /tmp/cajal-image-build.log
fi
check "buildah bud --isolation chroot (VARIANT=cpu) in $((SECONDS - start)) s" "$built"

# 3. Inside the image.
if $built; then
  ctr=$("${sudo[@]}" buildah from "$image")
  inside() { "${sudo[@]}" buildah run --isolation chroot --user 10001:10001 "$ctr" -- "$@"; }
  check "runs as uid 10001" test "$(inside id -u)" = 10001
  check "/bin/sh is present" inside /bin/sh -c 'exit 0'
  check "cajal and cajald are on PATH" inside sh -c 'command -v cajal && command -v cajald'
  check "every library of cajal and cajald resolves" \
    inside sh -c '! ldd /usr/local/bin/cajal /usr/local/bin/cajald | grep "not found"'
  check "Fashion-MNIST is installed" inside sh -c 'ls /usr/share/datasets/fashion-mnist/*-ubyte.gz'
  check "examples are in /usr/share/cajal/examples" inside test -f /usr/share/cajal/examples/mlp.yaml
  check "entrypoint is cajald" test "$("${sudo[@]}" buildah inspect --format '{{.OCIv1.Config.Entrypoint}}' "$image")" = "[cajald]"
  check "the image's user is 10001:10001" test "$("${sudo[@]}" buildah inspect --format '{{.OCIv1.Config.User}}' "$image")" = "10001:10001"
  check "cajald --help runs" inside sh -c 'cajald --help >/dev/null'
  out=$(inside sh -c '
    printf "%s\n" "model: {layers: [{dense: {units: 8}}, {activation: {kind: tanh}}, {dense: {units: 2}}]}" \
      "data: {train: {builtin: xor}}" "optimizer: {kind: adam, learning_rate: 0.05}" \
      "training: {epochs: 200, batch_size: 4, seed: 1, loss: cross_entropy}" > /tmp/xor.yaml
    cajal train --spec /tmp/xor.yaml --out /tmp/out && ls /tmp/out' 2>&1) && trained=true || trained=false
  echo "$out" | tail -n 4
  check "cajal train on builtin xor exits 0" "$trained"
  check "it prints Katib metric lines" grep -qE '^epoch=[0-9]+ loss=[0-9.]+ accuracy=[0-9.]+' <<<"$out"
  check "it writes model.cajal" grep -q '^model.cajal$' <<<"$out"
  # What an MPIJob needs (deploy/training-operator/): OpenMPI, the ssh client and a non-root
  # sshd. Keys laid out as the MPI Operator mounts its Secret (an ECDSA P-521 key in SEC1 PEM
  # named id_rsa, id_rsa.pub, authorized_keys) in the user's home; sshd on a spare port runs
  # the image's config, and ssh (the image's client config) runs cajal through it.
  check "mpirun and orted are on PATH" inside sh -c 'command -v mpirun && command -v orted'
  check "mpirun runs 2 ranks of cajal train" inside sh -c \
    'mpirun -np 2 --oversubscribe --bind-to none cajal train --spec /tmp/xor.yaml --out /tmp/mpi >/dev/null'
  out=$(inside sh -ec '
    mkdir -p /var/lib/cajal/.ssh && cd /var/lib/cajal/.ssh
    ssh-keygen -q -t ecdsa -b 521 -m PEM -N "" -f id_rsa && cp id_rsa.pub authorized_keys
    /usr/sbin/sshd -t -f /etc/ssh/cajal_sshd_config && echo "sshd config ok"
    /usr/sbin/sshd -D -e -p 22222 -f /etc/ssh/cajal_sshd_config 2>/tmp/sshd.log &
    sleep 1
    ssh -p 22222 127.0.0.1 "id -u; cajal train --spec /tmp/xor.yaml --out /tmp/ssh-out | tail -n 1"
    kill $!' 2>&1) && sshed=true || sshed=false
  echo "$out" | tail -n 3
  check "the image's sshd config is valid as uid 10001" grep -q '^sshd config ok$' <<<"$out"
  ssh_ok=false
  $sshed && grep -q '^10001$' <<<"$out" && grep -q 'samples_per_sec=' <<<"$out" && ssh_ok=true
  check "ssh into the non-root sshd with the operator's key layout runs cajal" "$ssh_ok"
  "${sudo[@]}" buildah rm "$ctr" >/dev/null
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
