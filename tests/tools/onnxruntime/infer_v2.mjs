// Answers one KServe v2 (Open Inference Protocol) REST request body with ONNX Runtime, as the
// Triton runtime would for an exported cajal model: reads the request's FP32 inputs, runs the
// model, prints the v2 response body (JSON) on stdout.
//
//   node tests/tools/onnxruntime/infer_v2.mjs MODEL.onnx REQUEST.json
//
// Exits 2 when the request does not fit the model (unknown tensor name, a datatype other than
// FP32, data of the wrong length), naming the problem.
import { readFileSync } from "node:fs";
import ort from "onnxruntime-node";

function fail(msg) {
  console.error(`infer_v2.mjs: ${msg}`);
  process.exit(2);
}

const [modelPath, requestPath] = process.argv.slice(2);
if (!modelPath || !requestPath) fail("usage: infer_v2.mjs MODEL.onnx REQUEST.json");
const request = JSON.parse(readFileSync(requestPath, "utf8"));
const session = await ort.InferenceSession.create(modelPath);

const feeds = {};
for (const input of request.inputs ?? []) {
  if (!session.inputNames.includes(input.name)) fail(`the model has no input "${input.name}"`);
  if (input.datatype !== "FP32") fail(`input ${input.name}: datatype ${input.datatype}, not FP32`);
  const count = input.shape.reduce((a, b) => a * b, 1);
  const data = input.data.flat(Infinity);
  if (data.length !== count) {
    fail(`input ${input.name}: ${data.length} values for shape ${JSON.stringify(input.shape)}`);
  }
  feeds[input.name] = new ort.Tensor("float32", Float32Array.from(data), input.shape);
}
const wanted = (request.outputs ?? []).map((o) => o.name);
for (const name of wanted) {
  if (!session.outputNames.includes(name)) fail(`the model has no output "${name}"`);
}
const results = await session.run(feeds);
const names = wanted.length > 0 ? wanted : session.outputNames;
const response = {
  model_name: "cajal",
  id: request.id,
  outputs: names.map((name) => ({
    name,
    shape: results[name].dims,
    datatype: "FP32",
    data: Array.from(results[name].data),
  })),
};
console.log(JSON.stringify(response));
