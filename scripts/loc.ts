/**
 * Lines of code: the lines of a TypeScript or JavaScript file that hold at least one token, so
 * blank lines and lines holding only comments do not count; a line inside a multi-line string or
 * template does. Tokens come from TypeScript's parser (TypeScript 6 API), so regular expressions,
 * templates and comment-like text inside strings are told apart as the compiler does.
 */
import ts from 'typescript';

export function countLoc(fileName: string, text: string): number {
  const kind = /\.[cm]?js$/.test(fileName) ? ts.ScriptKind.JS : ts.ScriptKind.TS;
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, kind);
  const lines = new Set<number>();
  const mark = (node: ts.Node): void => {
    const start = node.getStart(sf);
    if (node.end <= start) return;
    const first = sf.getLineAndCharacterOfPosition(start).line;
    const last = sf.getLineAndCharacterOfPosition(node.end - 1).line;
    for (let l = first; l <= last; l++) lines.add(l);
  };
  const visit = (node: ts.Node): void => {
    if (node.kind >= ts.SyntaxKind.FirstJSDocNode && node.kind <= ts.SyntaxKind.LastJSDocNode) return; // doc comments
    const children = node.getChildren(sf);
    if (children.length === 0) mark(node);
    else for (const c of children) visit(c);
  };
  visit(sf);
  return lines.size;
}
