# Sourced by bench/overhead.sh and bench/readers.sh: writes a batch of N trivial jobs (cp of an image, 8 virtual GPUs
# x 4 jobs) into a new temporary folder and prints the folder. Usage: dir=$(cp_batch N NAME)
cp_batch() {
  local n=$1 name=$2 w
  w=$(mktemp -d)
  cp manifests/demo-assets/teacher.png "$w/face.png"; cp manifests/demo-assets/lesson-03.wav "$w/a.wav"
  cat > "$w/cp.yaml" <<'YAML'
name: copy
command: [cp, "{image}", "{output}"]
output_check: nonempty
output_extension: png
max_jobs_per_gpu: 4
memory: {points: [{size: "384*256", infer_frames: 48, gb: 10}], headroom: 0}
time: {points: [{size: "384*256", infer_frames: 48, ms_per_frame: 1}]}
sharing: {2: 1.5, 4: 2.0}
YAML
  { printf 'version: 1\nname: %s\noutput_dir: out\nrenderer: cp.yaml\ngpus: 8x80GB\n' "$name"
    printf 'defaults: {image: face.png, audio: a.wav, prompt: p, size: "384*256", num_clip: 1}\nclips:\n'
    for i in $(seq "$n"); do printf '  - {id: c%05d}\n' "$i"; done; } > "$w/m.yaml"
  echo "$w"
}
