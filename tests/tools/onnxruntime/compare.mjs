// Runs an exported ONNX model in ONNX Runtime (onnxruntime-node's CPU build) on the first N
// images of an IDX file and compares its outputs with what `cajal evaluate --logits_out`
// wrote for the same images.
//
//   node tests/tools/onnxruntime/compare.mjs MODEL.onnx LOGITS.json IMAGES-idx3-ubyte.gz \
//       [--tolerance 1e-4]
//
// The model gets the raw pixels as float32 (its input contract: normalization is inside the
// graph, docs/serving.md), shaped as its input "input" declares. Checks, one line each:
//   - max |logits_onnx - logits_cajal| <= tolerance over every image and class
//   - argmax equal on every image
//   - accuracy from ONNX Runtime's argmax and the labels == accuracy from cajal's logits
//   - probabilities: each row sums to 1 within 1e-5 and has the logits' argmax
// Prints a last line `{"max_abs_diff": ..., "accuracy": ..., ...}` and exits 1 on a failed
// check, 2 on bad arguments.
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import ort from "onnxruntime-node";

function usage(msg) {
  console.error(`compare.mjs: ${msg}`);
  console.error("usage: compare.mjs MODEL.onnx LOGITS.json IMAGES-idx3-ubyte.gz [--tolerance T]");
  process.exit(2);
}

const args = process.argv.slice(2);
let tolerance = 1e-4;
const ti = args.indexOf("--tolerance");
if (ti >= 0) {
  tolerance = Number(args[ti + 1]);
  args.splice(ti, 2);
}
if (args.length !== 3 || !(tolerance > 0)) usage("expected three files");
const [modelPath, logitsPath, imagesPath] = args;

// IDX images: magic 0x00000803, count, rows, cols (big-endian), then u8 pixels.
function readIdxImages(path) {
  let bytes = readFileSync(path);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0) !== 0x803) usage(`${path}: not an IDX image file`);
  const [count, rows, cols] = [view.getUint32(4), view.getUint32(8), view.getUint32(12)];
  return { count, size: rows * cols, pixels: bytes.subarray(16) };
}

function argmax(row) {
  let best = 0;
  for (let j = 1; j < row.length; j++) if (row[j] > row[best]) best = j;
  return best;
}

const cajal = JSON.parse(readFileSync(logitsPath, "utf8"));
const n = cajal.examples;
const width = cajal.width;
const images = readIdxImages(imagesPath);
if (n > images.count) usage(`${logitsPath} has ${n} examples, ${imagesPath} only ${images.count}`);

const session = await ort.InferenceSession.create(modelPath);
const input = session.inputMetadata.find((m) => m.name === "input");
if (!input) usage(`${modelPath} has no input named "input"`);
const exampleDims = input.shape.slice(1);
const exampleSize = exampleDims.reduce((a, b) => a * b, 1);
if (exampleSize !== images.size) {
  usage(`the model's input ${JSON.stringify(input.shape)} does not hold ${images.size} pixels`);
}
const x = new Float32Array(n * exampleSize);
for (let i = 0; i < n * exampleSize; i++) x[i] = images.pixels[i];
const outputs = await session.run({ input: new ort.Tensor("float32", x, [n, ...exampleDims]) });
const primary = outputs.logits ?? outputs.outputs;
if (!primary) usage(`${modelPath} has neither a "logits" nor an "outputs" output`);

let failed = 0;
function check(ok, what) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failed++;
}

const got = primary.data;
check(got.length === n * width, `ONNX output has ${got.length / n} values per image, cajal ${width}`);
let maxDiff = 0;
let argmaxDisagree = 0;
let correctOnnx = 0;
let correctCajal = 0;
for (let i = 0; i < n; i++) {
  const a = got.subarray(i * width, (i + 1) * width);
  const b = cajal.logits[i];
  for (let j = 0; j < width; j++) {
    const d = b[j] === null ? Infinity : Math.abs(a[j] - b[j]);
    if (!(d <= maxDiff)) maxDiff = d;
  }
  if (cajal.labels) {
    if (argmax(a) !== argmax(b)) argmaxDisagree++;
    if (argmax(a) === cajal.labels[i]) correctOnnx++;
    if (argmax(b) === cajal.labels[i]) correctCajal++;
  }
}
check(maxDiff <= tolerance, `max |onnx - cajal| = ${maxDiff.toExponential(3)} <= ${tolerance}`);
const summary = { examples: n, width, max_abs_diff: maxDiff, tolerance };
if (cajal.labels) {
  check(argmaxDisagree === 0, `argmax equal on ${n - argmaxDisagree} of ${n} images`);
  check(correctOnnx === correctCajal,
        `accuracy ${correctOnnx / n} (ONNX Runtime) == ${correctCajal / n} (cajal's logits)`);
  summary.accuracy = correctOnnx / n;
  summary.accuracy_cajal = correctCajal / n;
}
if (outputs.probabilities) {
  const p = outputs.probabilities.data;
  let worstSum = 0;
  let probArgmaxDisagree = 0;
  for (let i = 0; i < n; i++) {
    const row = p.subarray(i * width, (i + 1) * width);
    worstSum = Math.max(worstSum, Math.abs(row.reduce((s, v) => s + v, 0) - 1));
    if (argmax(row) !== argmax(got.subarray(i * width, (i + 1) * width))) probArgmaxDisagree++;
  }
  const softmax = width > 1;  // sigmoid probabilities (binary cross-entropy) need not sum to 1
  check(!softmax || worstSum <= 1e-5, `probabilities sum to 1 (worst ${worstSum.toExponential(2)})`);
  check(probArgmaxDisagree === 0, "probabilities have the logits' argmax on every image");
}
console.log(JSON.stringify(summary));
process.exit(failed > 0 ? 1 : 0);
