#!/usr/bin/env bash
# Builds fuzz/corpus/<target>/ from the committed fixtures (small files only), with the
# prefix each target adds itself stripped off. Run from the repository root.
set -euo pipefail
c=fuzz/corpus
rm -rf "$c"; mkdir -p "$c"/{open_any,gguf,pickle,safetensors,npy,codecs,prequant,bitnet}
small() { find "$@" -type f -size -64k 2>/dev/null; }
for f in $(small tests/fixtures/gguf -name '*.gguf'); do
  cp "$f" "$c/open_any/$(basename "$f")"; tail -c +5 "$f" > "$c/gguf/$(basename "$f")"; done
for f in $(small tests/fixtures/numpy -name '*.np[yz]') $(small tests/fixtures/torch -name '*.pth') $(small tests/fixtures/torch/pickles); do
  cp "$f" "$c/open_any/$(basename "$f")"; done
for f in $(small tests/fixtures/numpy -name '*.npy'); do tail -c +7 "$f" > "$c/npy/$(basename "$f")"; done
for f in $(small tests/fixtures/torch/pickles -name '*.pkl'); do cp "$f" "$c/pickle/"; done
for f in $(small tests/fixtures/torch -name '*legacy*.pth'); do tail -c +15 "$f" > "$c/pickle/$(basename "$f")"; done
python3 - "$c/pickle" <<'PY'
import sys, zipfile, glob, os
for f in glob.glob("tests/fixtures/torch/*_zip.pth"):
    z = zipfile.ZipFile(f)
    for n in z.namelist():
        if n.endswith("data.pkl"):
            open(os.path.join(sys.argv[1], os.path.basename(f) + ".pkl"), "wb").write(z.read(n))
PY
for f in $(find tests/fixtures/safetensors -name '*.safetensors'); do
  python3 -c "import sys; b=open(sys.argv[1],'rb').read(); n=int.from_bytes(b[:8],'little'); open(sys.argv[2],'wb').write(b[8:8+n]+b'\0'+b[8+n:8+n+256])" "$f" "$c/safetensors/$(basename "$f")"; done
for f in $(small tests/fixtures/bitsandbytes tests/fixtures/hqq tests/fixtures/mlx tests/fixtures/quanto tests/fixtures/hf -name '*.safetensors'); do
  { printf '\x23'; cat "$f"; } > "$c/prequant/$(basename "$(dirname "$f")")-$(basename "$f")"; done
# codecs: a type byte, then blocks cut from the golden vectors.
i=0; for f in $(small tests/fixtures/golden -type f); do
  { printf "\\x$(printf %02x $((i % 256)))"; head -c 4096 "$f"; } > "$c/codecs/seed$i"; i=$((i+1)); done
# bitnet: a pick byte, then I2_S tensors cut from the BitNet fixture (data after the header).
for i in 0 1 2 3; do { printf "\\x$(printf %02x $((i * 37)))"; tail -c $((4096 * (i + 1) + 32)) tests/fixtures/gguf/bitnet-i2s.gguf; } > "$c/bitnet/seed$i"; done
for t in open_any gguf pickle safetensors npy codecs prequant bitnet; do echo "$t: $(ls $c/$t | wc -l) seeds"; done
