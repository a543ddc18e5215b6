#!/bin/sh
# Render history plots (or any SVG) to PNG in headless Chromium, to look at
# them as a browser shows them:   tools/svg-screenshot.sh models/*.svg
# Each FILE.svg gives FILE.png beside it (or in $OUT_DIR when set). Chromium
# is optional, not a build dependency: when it is missing this prints the
# apt-get command and fails.
set -eu
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "svg-screenshot: Chromium is not installed; run: apt-get install -y chromium" >&2
    exit 1
fi
[ $# -gt 0 ] || { echo "usage: $0 FILE.svg..." >&2; exit 2; }
for svg in "$@"; do
    [ -r "$svg" ] || { echo "svg-screenshot: $svg: cannot read it" >&2; exit 1; }
    # The plot's own size, from its root element (history.c writes width="W" height="H").
    size=$(sed -n 's/.*<svg[^>]* width="\([0-9]*\)" height="\([0-9]*\)".*/\1,\2/p' "$svg" | head -n 1)
    png="${OUT_DIR:-$(dirname "$svg")}/$(basename "$svg" .svg).png"
    "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="${size:-800,600}" \
        --screenshot="$png" "file://$(realpath "$svg")" >/dev/null 2>&1
    [ -s "$png" ] || { echo "svg-screenshot: $svg: Chromium wrote no image" >&2; exit 1; }
    echo "$png"
done
