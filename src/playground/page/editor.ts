// A CodeMirror editor for Python with one thing of our own: a line marked as where a run failed.
import { python } from '@codemirror/lang-python'
import { StateEffect, StateField } from '@codemirror/state'
import { Decoration, type DecorationSet, EditorView } from '@codemirror/view'
import { basicSetup } from 'codemirror'

const markLine = StateEffect.define<number | null>()

const errorLine = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(marks, transaction) {
    let next = transaction.docChanged ? Decoration.none : marks
    for (const effect of transaction.effects) {
      if (!effect.is(markLine)) continue
      const line = effect.value
      next =
        line === null || line < 1 || line > transaction.state.doc.lines
          ? Decoration.none
          : Decoration.set([
              Decoration.line({ class: 'cm-error-line' }).range(
                transaction.state.doc.line(line).from,
              ),
            ])
    }
    return next
  },
  provide: (field) => EditorView.decorations.from(field),
})

export class PythonEditor {
  readonly view: EditorView

  constructor(parent: HTMLElement, text: string) {
    this.view = new EditorView({ doc: text, parent, extensions: [basicSetup, python(), errorLine] })
  }

  get text(): string {
    return this.view.state.doc.toString()
  }

  set text(value: string) {
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: value } })
  }

  /** Marks `line` (1 = the first) as where the run failed, and scrolls to it; null clears. */
  markError(line: number | null): void {
    const effects: StateEffect<unknown>[] = [markLine.of(line)]
    if (line !== null && line >= 1 && line <= this.view.state.doc.lines)
      effects.push(EditorView.scrollIntoView(this.view.state.doc.line(line).from, { y: 'center' }))
    this.view.dispatch({ effects })
  }
}
