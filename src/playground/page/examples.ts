// Blocks to start from: what a first-time user tries in the first minute.

export interface Example {
  name: string
  run: string
  init: string
  /** The JSON inputs (the image, when the example takes one, comes from the drop zone). */
  inputs: Record<string, unknown>
  /** Detections in Roboflow's JSON form, for the detections input. */
  detections?: Record<string, unknown>
}

export const EXAMPLES: Example[] = [
  {
    name: 'sum',
    run: 'def run(self, a, b):\n    return {"sum": a + b}\n',
    init: '',
    inputs: { a: 10.5, b: 20.25 },
  },
  {
    name: 'invert an image',
    run:
      'def run(self, image):\n' +
      '    inverted = 255 - image.numpy_image\n' +
      '    return {"inverted": WorkflowImageData.copy_and_replace(image, numpy_image=inverted),\n' +
      '            "shape": list(image.numpy_image.shape)}\n',
    init: '',
    inputs: {},
  },
  {
    name: 'filter detections',
    run:
      'def run(self, image, predictions, min_confidence):\n' +
      '    kept = predictions[predictions.confidence >= min_confidence]\n' +
      '    return {"kept": kept, "count": len(kept), "classes": list(kept.data["class_name"])}\n',
    init: '',
    inputs: { min_confidence: 0.5 },
    detections: {
      image: { width: 640, height: 480 },
      predictions: [
        {
          x: 160,
          y: 120,
          width: 120,
          height: 90,
          confidence: 0.92,
          class_id: 0,
          class: 'cat',
          // Its mask's outline: a prediction with points gets a mask (drawn tinted).
          points: [
            { x: 160, y: 78 },
            { x: 217, y: 120 },
            { x: 160, y: 162 },
            { x: 103, y: 120 },
          ],
        },
        { x: 420, y: 300, width: 160, height: 140, confidence: 0.31, class_id: 1, class: 'dog' },
        { x: 480, y: 110, width: 90, height: 70, confidence: 0.77, class_id: 1, class: 'dog' },
      ],
    },
  },
  {
    name: 'a block that raises',
    run:
      'def run(self, values):\n' +
      '    total = sum(values)\n' +
      '    print("total", total)\n' +
      '    return {"mean": total / (len(values) - 3)}\n',
    init: '',
    inputs: { values: [1, 2, 3] },
  },
  {
    name: 'init once, run many',
    run: 'def run(self, x):\n    return {"scaled": x * self._init_results["scale"]}\n',
    init: 'def init():\n    print("loaded once")\n    return {"scale": 3}\n',
    inputs: { x: 14 },
  },
]
