#!/usr/bin/env bash
# Slow: builds the container image offline (debootstrap base + buildah, chroot isolation) and
# trains a tiny spec inside it. Needs root or sudo and Debian's mirror; 20+ minutes.
#   bash tests/slow/image_build_test.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash scripts/image-test.sh
