// onnx_run.js - the onnxruntime side of tests/test_interop.c: run an .onnx
// that a trainer exported (--export W.onnx) in onnxruntime-node on raw MNIST
// test images, and compare with the trainer's own lines (trainer_run: the
// argmax, then the probabilities, one line an image).
//
//   NODE_PATH=build/node/node_modules node tests/tools/onnx_run.js W.onnx IMAGES-idx3-ubyte TRAINER.txt
//
// Prints `onnxruntime IMAGES DIFFERENT_ARGMAX MAX_PROB_DIFF`. The graph takes
// uint8 pixels [N][h][w][c], as nnc does: no preprocessing here. IMAGES is
// IDX uint8 with 3 dimensions (MNIST's [N][h][w]: c = 1) or 4 ([N][h][w][c]).
"use strict";
const fs = require("fs");
const ort = require("onnxruntime-node");

const BATCH = 500;

async function main() {
    const [onnxPath, imagesPath, trainerPath] = process.argv.slice(2);
    const raw = fs.readFileSync(imagesPath);
    const magic = raw.readUInt32BE(0);
    if (magic !== 0x803 && magic !== 0x804) throw new Error(imagesPath + ": not an IDX file of uint8 images");
    const count = raw.readUInt32BE(4), h = raw.readUInt32BE(8), w = raw.readUInt32BE(12);
    const c = magic === 0x804 ? raw.readUInt32BE(16) : 1, header = magic === 0x804 ? 20 : 16;
    const trainer = fs.readFileSync(trainerPath, "utf8").trim().split("\n").map((l) => l.trim().split(/\s+/).map(Number));
    const n = Math.min(count, trainer.length);
    const session = await ort.InferenceSession.create(onnxPath, {intraOpNumThreads: 1, interOpNumThreads: 1});
    const input = session.inputNames[0], output = session.outputNames[0];
    let mismatched = 0, maxDiff = 0;
    for (let start = 0; start < n; start += BATCH) {
        const b = Math.min(BATCH, n - start);
        const pixels = new Uint8Array(raw.buffer, raw.byteOffset + header + start * h * w * c, b * h * w * c);
        const result = await session.run({[input]: new ort.Tensor("uint8", pixels, [b, h, w, c])});
        const probs = result[output].data, classes = result[output].dims[1];
        for (let i = 0; i < b; i++) {
            const ref = trainer[start + i];
            let best = 0;
            for (let k = 0; k < classes; k++) {
                const p = probs[i * classes + k];
                if (p > probs[i * classes + best]) best = k;
                maxDiff = Math.max(maxDiff, Math.abs(p - ref[1 + k]));
            }
            if (best !== ref[0]) mismatched++;
        }
    }
    console.log("onnxruntime %d %d %s", n, mismatched, maxDiff.toExponential(3));
}

main().catch((e) => {
    console.error("onnx_run: " + (e && e.message ? e.message : e));
    process.exit(1);
});
