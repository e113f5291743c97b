# Shared steps of scripts/setup and scripts/test. Sourced, not run.
# Every step is idempotent and quick when there is nothing to do.

QCODER_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian/Ubuntu packages the build and the tests need.
QCODER_APT_PACKAGES=(
  cmake ninja-build ccache pkg-config g++ git
  libboost-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libutf8proc-dev
  clang-14 libclang-rt-14-dev neovim nodejs npm
  chromium ripgrep python3 make
)

# ccache keys on relative paths below the checkout, so a fresh clone elsewhere (CI) reuses earlier builds.
export CCACHE_BASEDIR="$QCODER_ROOT"
export CCACHE_NOHASHDIR=1

log() { printf '\033[1m[qcoder]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else log "need root to run: $*"; return 1
  fi
}

install_apt_packages() {
  local missing=() pkg
  for pkg in "${QCODER_APT_PACKAGES[@]}"; do
    # nodejs/npm may come from elsewhere (nodesource, nvm); a working command is enough.
    case $pkg in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;; esac
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing apt packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# third_party/ is git-ignored; it is filled from npm with the versions pinned in scripts/third_party/.
fill_third_party() {
  local src="$QCODER_ROOT/scripts/third_party" dst="$QCODER_ROOT/third_party"
  local want have=""
  want=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)
  [ -f "$dst/.installed" ] && have=$(cat "$dst/.installed")
  if [ "$want" = "$have" ] && [ -d "$dst/node_modules" ]; then return 0; fi
  log "filling third_party/ from npm (tree-sitter core, grammars, Qwen3 tokenizer)"
  mkdir -p "$dst"
  cp "$src/package.json" "$src/package-lock.json" "$src/.npmrc" "$dst/"
  (cd "$dst" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  echo "$want" > "$dst/.installed"
}

# editors/vscode/node_modules/ (git-ignored): the extension's build and test tools (tsc, vsce, vitest) and its
# runtime dependency, from the committed package-lock.json; installed again only when the lock changes.
# Without node or npm it is skipped, and so is the extension in the build.
fill_vscode_modules() {
  local dir="$QCODER_ROOT/editors/vscode" want have=""
  command -v node >/dev/null && command -v npm >/dev/null || { log "no node/npm: skipping the VS Code extension"; return 0; }
  want=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)
  [ -f "$dir/node_modules/.installed" ] && have=$(cat "$dir/node_modules/.installed")
  [ "$want" = "$have" ] && return 0
  log "installing the VS Code extension's npm packages (editors/vscode/node_modules)"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  echo "$want" > "$dir/node_modules/.installed"
}

# editors/vscode/test/browser/node_modules/ (git-ignored): code-server and playwright-core, for the test of the
# extension under a real VS Code in Debian's chromium. Only npm packages are fetched: install scripts are off and
# code-server's own postinstall (which would download ripgrep) is done here by hand: VS Code's server modules
# from its shrinkwrap, Debian's rg where @vscode/ripgrep puts its download, and the native modules (argon2
# included) built from source against the headers of the node that runs them.
fill_vscode_browser() {
  local dir="$QCODER_ROOT/editors/vscode/test/browser" want have=""
  command -v node >/dev/null && command -v npm >/dev/null || return 0
  want=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)
  [ -f "$dir/node_modules/.installed" ] && have=$(cat "$dir/node_modules/.installed")
  [ "$want" = "$have" ] && return 0
  log "installing code-server and playwright-core for the VS Code browser test (editors/vscode/test/browser)"
  (
    set -e
    quiet=(--ignore-scripts --no-audit --no-fund --loglevel=error)
    export npm_config_nodedir npm_config_yes=true
    npm_config_nodedir=$(cd "$(dirname "$(readlink -f "$(command -v node)")")/.." && pwd)
    cd "$dir"
    npm ci "${quiet[@]}"
    npm rebuild argon2 --build-from-source --loglevel=error
    cd node_modules/code-server/lib/vscode
    npm install --omit=dev "${quiet[@]}"  # as code-server's postinstall: its shrinkwrap misses a package
    mkdir -p node_modules/@vscode/ripgrep/bin
    ln -sf "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
    npm rebuild @vscode/spdlog node-pty @parcel/watcher native-watchdog @vscode/deviceid --loglevel=error
    ln -sfn node_modules node_modules.asar
    ln -sfn code-linux.sh bin/remote-cli/code-server
    ln -sfn browser-linux.sh bin/helpers/browser.sh
    cd extensions
    npm install --omit=dev "${quiet[@]}"
  ) || { log "the VS Code browser test's packages could not be installed"; return 1; }
  echo "$want" > "$dir/node_modules/.installed"
}

# configure_and_build PRESET: CMake configure (once) and an incremental Ninja build.
configure_and_build() {
  local preset=$1
  cd "$QCODER_ROOT"
  if [ ! -f "build/$preset/build.ninja" ]; then
    log "configuring ($preset)"
    cmake --preset "$preset" >/dev/null
  fi
  log "building ($preset)"
  cmake --build --preset "$preset"
}
