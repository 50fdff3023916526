// The playground's HTML: the layout and its settings; page/main.ts brings it to life.

export interface PlaygroundSettings {
  /** Runs need an API key: the page asks for one. */
  keysRequired: boolean
  /** Backends this server can run on (the selector's choices). */
  backends: string[]
  defaultBackend: string
  /** Traces are exported: a run's trace id is shown (and linked with the template). */
  tracing: boolean
  /** `{trace_id}` is replaced by the run's (BLOCKGATE_TRACE_URL_TEMPLATE). */
  traceUrlTemplate: string | null
}

// JSON inside <script> must not be able to close the element.
const scriptSafe = (value: unknown) => JSON.stringify(value).replaceAll('<', '\\u003c')

export function pageHtml(settings: PlaygroundSettings): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>blockgate playground</title>
<link rel="icon" href="data:,">
<style>
  :root { font: 14px/1.4 system-ui, sans-serif; color: #1d2330; background: #f4f5f8; }
  body { margin: 0; }
  header { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; padding: 10px 16px;
    background: #1d2330; color: #fff; }
  header h1 { font-size: 16px; margin: 0 12px 0 0; }
  header label { display: flex; gap: 6px; align-items: center; }
  header input, header select { font: inherit; padding: 3px 6px; }
  button#run { font: inherit; font-weight: 600; padding: 5px 18px; background: #5b5bf0; color: #fff;
    border: 0; border-radius: 4px; cursor: pointer; }
  button#run:disabled { opacity: 0.5; cursor: wait; }
  main { display: grid; grid-template-columns: minmax(0, 1.1fr) minmax(0, 1fr); gap: 12px; padding: 12px; }
  section { background: #fff; border-radius: 6px; padding: 10px 12px; box-shadow: 0 1px 2px #0002; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: #5a6273; margin: 4px 0 8px; }
  .editor { border: 1px solid #d5d8e0; border-radius: 4px; }
  .editor .cm-editor { max-height: 340px; }
  .cm-error-line { background: #ffe1e1 !important; }
  textarea { width: 100%; box-sizing: border-box; font: 12px/1.4 ui-monospace, monospace; min-height: 64px; }
  #drop { border: 2px dashed #b7bccb; border-radius: 6px; padding: 10px; text-align: center; color: #5a6273; }
  #drop.over { border-color: #5b5bf0; background: #eef; }
  #drop img { max-width: 100%; max-height: 160px; display: block; margin: 6px auto 0; }
  .row { display: flex; gap: 8px; align-items: center; margin: 6px 0; }
  .status { font-weight: 600; margin-bottom: 6px; }
  .status.failed { color: #b00020; }
  .badge { display: inline-block; padding: 1px 6px; border-radius: 3px; background: #e8e9ef; font-size: 12px; margin-left: 6px; }
  .waterfall { margin: 8px 0; }
  .waterfall .bar-row { display: grid; grid-template-columns: 80px 1fr 70px; gap: 6px; align-items: center; font-size: 12px; }
  .waterfall .track { position: relative; height: 12px; background: #f0f1f5; border-radius: 2px; }
  .waterfall .bar { position: absolute; top: 0; height: 12px; border-radius: 2px; min-width: 2px; }
  .bar.queue { background: #f0a500; } .bar.acquire { background: #e0607e; }
  .bar.execute { background: #5b5bf0; } .bar.user_code { background: #22a06b; } .bar.total { background: #8a90a0; }
  .outputs details { margin-left: 12px; } .outputs summary { cursor: pointer; }
  .outputs .key { color: #5b5bf0; } .outputs .kind { color: #5a6273; font-size: 12px; }
  .outputs canvas, .outputs img { width: 100%; max-width: 520px; image-rendering: pixelated; border: 1px solid #d5d8e0;
    display: block; margin: 4px 0; }
  pre { background: #f6f7f9; padding: 6px 8px; border-radius: 4px; overflow: auto; max-height: 240px; margin: 4px 0; }
  pre.error { background: #fff0f0; color: #8a0018; }
  .hidden { display: none; }
</style>
</head>
<body>
<header>
  <h1>blockgate playground</h1>
  <label>Example <select id="example"></select></label>
  <label>Workspace <input id="workspace" value="playground" size="12"></label>
  <label>Backend <select id="backend"></select></label>
  <label id="key-label" class="hidden">API key <input id="key" type="password" size="18" autocomplete="off"></label>
  <button id="run">Run ▶</button>
</header>
<main>
  <section>
    <h2>run_function_code</h2>
    <div id="run-editor" class="editor"></div>
    <h2>init_function_code <span class="kind">(optional: runs once per loaded block, its result is self._init_results)</span></h2>
    <div id="init-editor" class="editor"></div>
    <h2>Inputs</h2>
    <textarea id="inputs" spellcheck="false" aria-label="inputs as JSON"></textarea>
    <div class="row"><label>Image input <input id="image-name" value="image" size="10"></label>
      <input id="image-file" type="file" accept="image/*"></div>
    <div id="drop">Drop an image here (sent as the <code>image</code> kind, losslessly)<img id="image-preview" class="hidden" alt="the input image"></div>
    <div class="row"><label>Detections input <input id="detections-name" value="predictions" size="12"></label>
      <span class="kind">optional, Roboflow's JSON form</span></div>
    <textarea id="detections" spellcheck="false" aria-label="detections as JSON" placeholder='{"image": {"width": 640, "height": 480}, "predictions": [{"x": 100, "y": 80, "width": 60, "height": 40, "confidence": 0.9, "class_id": 0, "class": "cat"}]}'></textarea>
  </section>
  <section id="result">
    <h2>Result</h2>
    <div id="status" class="status">Press Run.</div>
    <div id="trace"></div>
    <div id="waterfall" class="waterfall"></div>
    <pre id="error" class="error hidden"></pre>
    <h2>Outputs</h2>
    <div id="outputs" class="outputs"></div>
    <h2>stdout</h2><pre id="stdout"></pre>
    <h2>stderr</h2><pre id="stderr"></pre>
  </section>
</main>
<script type="application/json" id="settings">${scriptSafe(settings)}</script>
<script type="module" src="/playground/app.js"></script>
</body>
</html>
`
}
