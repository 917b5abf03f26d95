// herald vet for JavaScript and TypeScript: parses each file with the
// TypeScript compiler API and reports the WebSocket pitfalls of docs/VET.md.
// Usage: node vet.mjs TYPESCRIPT_DIR FILE...
// Prints a JSON array of {file, line, col, id, message}.
import { pathToFileURL } from "node:url";
import { join, dirname } from "node:path";

const [tsDir, ...files] = process.argv.slice(2);
const { API } = await import(pathToFileURL(join(tsDir, "dist/api/sync/api.js")).href);
const { SyntaxKind: K } = await import(pathToFileURL(join(tsDir, "dist/ast/index.js")).href);

const MSG = {
  "ws-heartbeat-ws": "socket with no heartbeat (a peer that vanishes without a close is never noticed); ping on an interval and terminate the socket when no pong came back since the last ping",
  "ws-heartbeat-browser": "socket with no heartbeat (a browser cannot see a dead server: the socket stays open and silent); have the server ping and close the socket when no message came for longer than the ping interval",
  "ws-reconnect-constant": "reconnect with a constant delay (after an outage every client comes back at the same moment); grow the delay exponentially up to a cap and draw it at random below that (full jitter)",
  "ws-reconnect-nojitter": "exponential backoff without jitter (clients dropped together retry together, at every step); draw the delay at random between 0 and the backoff (full jitter)",
  "ws-reconnect-cap": "jitter added before the cap (once the backoff reaches the cap every client waits exactly the cap); cap first, then draw the delay at random below the capped value",
  "ws-reconnect-reset": "attempt counter reset when the socket opens (a server that accepts then drops keeps clients at the shortest delay); reset it only after the connection proved stable, e.g. on its first message or after a minute open",
  "ws-validate-json": "JSON.parse of a message with no try/catch (one malformed message throws out of the handler); parse in a try block and log or close with 1007 on failure",
  "ws-validate-switch": "switch on the message type with no default (unknown types are silently ignored); add a default that logs or reports the unknown type",
  "ws-error-listener": "ws socket with no 'error' listener (an 'error' event with no listener throws and one bad frame crashes the process); add ws.on('error', err => log(err))",
  "ws-error-swallowed": "'error' listener that does nothing (the connection's errors are lost); log the error",
};

const findings = [];
const api = new API({ cwd: process.cwd() });
try {
  const snap = api.updateSnapshot({ openFiles: files });
  for (const f of files) {
    const project = snap.getDefaultProjectForFile(f);
    const sf = project?.program.getSourceFile(f);
    if (!sf) {
      findings.push({ file: f, line: 1, col: 1, id: "parse", message: "could not be parsed" });
      continue;
    }
    checkFile(f, sf);
  }
} finally {
  api.close();
}
process.stdout.write(JSON.stringify(findings) + "\n");

function checkFile(file, sf) {
  const text = sf.text;
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === "\n") lineStarts.push(i + 1);
  const lineOf = (pos) => {
    let lo = 0, hi = lineStarts.length - 1;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (lineStarts[mid] <= pos) lo = mid; else hi = mid - 1; }
    return lo;
  };
  const lines = text.split("\n");
  const ignored = (line, id) => [line, line - 1].some((l) => {
    const m = l >= 0 && /\/\/\s*herald:vet-ignore\s+(\S+)\s+\S/.exec(lines[l] ?? "");
    return m && m[1] === id;
  });
  const seen = new Set();
  const report = (node, key) => {
    const pos = node.getStart(sf);
    const line = lineOf(pos);
    const id = key.replace(/-(ws|browser|constant|nojitter|cap|reset|json|switch)$/, "");
    const k = `${line}:${id}:${key}`;
    if (seen.has(k) || ignored(line, id)) return;
    seen.add(k);
    findings.push({ file, line: line + 1, col: pos - lineStarts[line] + 1, id, message: `${id}: ${MSG[key]}` });
  };

  const all = [];
  (function walk(n) { all.push(n); n.forEachChild(walk); })(sf);
  const src = (n) => n.getText(sf);
  const isCall = (n) => n.kind === K.CallExpression;
  const strArg = (n) => n && (n.kind === K.StringLiteral || n.kind === K.NoSubstitutionTemplateLiteral) ? n.text : undefined;
  const isFn = (n) => n && (n.kind === K.ArrowFunction || n.kind === K.FunctionExpression || n.kind === K.FunctionDeclaration || n.kind === K.MethodDeclaration);
  const within = (n, pred) => { for (let p = n.parent; p; p = p.parent) if (pred(p)) return p; return undefined; };
  const contains = (root, pred) => { let found = false; (function w(n) { if (found) return; if (pred(n)) { found = true; return; } n.forEachChild(w); })(root); return found; };
  const calls = (root, name) => contains(root, (n) => isCall(n) && calleeName(n) === name);
  const calleeName = (c) => c.expression.kind === K.PropertyAccessExpression ? c.expression.name.text : c.expression.kind === K.Identifier ? c.expression.text : "";
  const fnDecls = new Map(all.filter((n) => n.kind === K.FunctionDeclaration && n.name).map((n) => [n.name.text, n]));
  for (const n of all) if (n.kind === K.VariableDeclaration && n.name.kind === K.Identifier && isFn(n.initializer)) fnDecls.set(n.name.text, n.initializer);
  const fnBody = (e) => isFn(e) ? e : e?.kind === K.Identifier ? fnDecls.get(e.text) : undefined;

  // Which names are ws's WebSocket class in this file.
  const wsNames = new Set();
  let importsWs = false;
  for (const n of all) {
    if (n.kind === K.ImportDeclaration && strArg(n.moduleSpecifier) === "ws") {
      importsWs = true;
      const c = n.importClause;
      if (c?.name) wsNames.add(c.name.text);
      if (c?.namedBindings?.kind === K.NamedImports) for (const s of c.namedBindings.elements) if ((s.propertyName ?? s.name).text === "WebSocket") wsNames.add(s.name.text);
      if (c?.namedBindings?.kind === K.NamespaceImport) wsNames.add(c.namedBindings.name.text);
    }
    if (isCall(n) && calleeName(n) === "require" && strArg(n.arguments[0]) === "ws") {
      importsWs = true;
      const d = n.parent;
      if (d.kind === K.VariableDeclaration && d.name.kind === K.Identifier) wsNames.add(d.name.text);
      if (d.kind === K.VariableDeclaration && d.name.kind === K.ObjectBindingPattern) for (const e of d.name.elements) if ((e.propertyName ?? e.name).text === "WebSocket") wsNames.add(e.name.text);
    }
  }

  // Event listeners: key (socket expression text) -> event -> [handler expr].
  const listeners = new Map();
  const listen = (target, ev, h) => {
    const key = src(target);
    if (!listeners.has(key)) listeners.set(key, new Map());
    const m = listeners.get(key);
    if (!m.has(ev)) m.set(ev, []);
    m.get(ev).push(h);
  };
  for (const n of all) {
    if (isCall(n) && n.expression.kind === K.PropertyAccessExpression && ["on", "once", "addEventListener", "addListener"].includes(n.expression.name.text)) {
      const ev = strArg(n.arguments[0]);
      if (ev && n.arguments[1]) listen(n.expression.expression, ev, n.arguments[1]);
    }
    if (n.kind === K.BinaryExpression && n.operatorToken.kind === K.EqualsToken && n.left.kind === K.PropertyAccessExpression && /^on[a-z]+$/.test(n.left.name.text)) {
      listen(n.left.expression, n.left.name.text.slice(2), n.right);
    }
  }
  const handlers = (key, ev) => listeners.get(key)?.get(ev) ?? [];

  // Sockets: {node to report at, key, lib: "ws" | "browser"}.
  const sockets = [];
  const keyOf = (newExpr) => {
    const p = newExpr.parent;
    if (p.kind === K.VariableDeclaration && p.name.kind === K.Identifier) return p.name.text;
    if (p.kind === K.BinaryExpression && p.operatorToken.kind === K.EqualsToken) return src(p.left);
    return undefined;
  };
  for (const n of all) {
    if (n.kind === K.NewExpression) {
      const callee = n.expression.kind === K.Identifier ? n.expression.text : n.expression.kind === K.PropertyAccessExpression ? n.expression.name.text : "";
      const base = n.expression.kind === K.PropertyAccessExpression ? src(n.expression.expression) : "";
      let lib;
      if (wsNames.has(callee) || (wsNames.has(base) && callee === "WebSocket")) lib = "ws";
      else if (callee === "WebSocket") lib = "browser";
      if (lib) sockets.push({ node: n, key: keyOf(n), lib });
    }
  }
  if (importsWs) {
    for (const [, evs] of listeners) for (const h of evs.get("connection") ?? []) {
      const fn = fnBody(h);
      const p = fn?.parameters?.[0];
      if (p && p.name.kind === K.Identifier) sockets.push({ node: isFn(h) ? p : h, key: p.name.text, lib: "ws", server: true });
    }
  }

  // Rule 2: heartbeat.
  const wsBeat = all.some((n) => isCall(n) && n.expression.kind === K.PropertyAccessExpression && n.expression.name.text === "ping")
    || [...listeners.values()].some((m) => m.has("ping") || m.has("pong"));
  const timerCloses = all.some((n) => isCall(n) && ["setTimeout", "setInterval"].includes(calleeName(n)) && n.arguments[0]
    && contains(n.arguments[0], (c) => isCall(c) && c.expression.kind === K.PropertyAccessExpression && ["send", "close", "terminate"].includes(c.expression.name.text)));
  for (const s of sockets) {
    if (s.lib === "ws" && !wsBeat) report(s.node, "ws-heartbeat-ws");
    if (s.lib === "browser" && !timerCloses) report(s.node, "ws-heartbeat-browser");
  }

  // Rule 7: ws sockets need an 'error' listener that does something.
  for (const s of sockets) {
    if (s.lib !== "ws" || !s.key) continue;
    const hs = handlers(s.key, "error");
    if (hs.length === 0) report(s.node, "ws-error-listener");
    for (const h of hs) if (isFn(h) && h.body.kind === K.Block && h.body.statements.length === 0) report(h, "ws-error-swallowed");
  }

  // Message handlers, and the functions they call by name.
  const msgFns = [];
  for (const s of sockets) if (s.key) for (const h of handlers(s.key, "message")) { const f = fnBody(h); if (f) msgFns.push(f); }
  for (const f of [...msgFns]) for (const n of [f, ...descendants(f)]) if (isCall(n) && n.expression.kind === K.Identifier) { const g = fnDecls.get(n.expression.text); if (g && !msgFns.includes(g)) msgFns.push(g); }

  // Rule 5: validation.
  const typeField = /^(type|kind|op|action|event|cmd|command|method)$/i;
  for (const f of msgFns) {
    for (const n of descendants(f)) {
      if (isCall(n) && src(n.expression) === "JSON.parse") {
        const guarded = within(n, (p) => p === f || (p.kind === K.TryStatement && p.catchClause && contains(p.tryBlock, (x) => x === n)));
        if (!guarded || guarded === f) report(n, "ws-validate-json");
      }
      if (n.kind === K.SwitchStatement && n.expression.kind === K.PropertyAccessExpression && typeField.test(n.expression.name.text)) {
        const cl = n.caseBlock.clauses;
        if (cl.length > 0 && cl.every((c) => c.kind === K.CaseClause && strArg(c.expression) !== undefined)) report(n, "ws-validate-switch");
      }
    }
  }

  // Rule 4: reconnect. The connect functions are those that create a socket.
  const connectFns = new Set();
  for (const s of sockets) if (!s.server) { const f = within(s.node, isFn); if (f) connectFns.add(f); }
  const callsConnect = (e) => {
    const f = fnBody(e);
    if (f && connectFns.has(f)) return true;
    return !!f && contains(f, (c) => isCall(c) && c.expression.kind === K.Identifier && connectFns.has(fnDecls.get(c.expression.text)))
      || contains(e, (c) => isCall(c) && c.expression.kind === K.PropertyAccessExpression && c.expression.expression.kind === K.ThisKeyword && [...connectFns].some((g) => g.kind === K.MethodDeclaration && g.name.text === c.expression.name.text));
  };
  const counters = new Set();
  for (const n of all) {
    if ((n.kind === K.PostfixUnaryExpression || n.kind === K.PrefixUnaryExpression) && n.operator === K.PlusPlusToken) counters.add(src(n.operand));
    if (n.kind === K.BinaryExpression && n.operatorToken.kind === K.PlusEqualsToken) counters.add(src(n.left));
  }
  const constants = new Map();
  for (const n of all) if (n.kind === K.VariableDeclaration && n.name.kind === K.Identifier && n.initializer?.kind === K.NumericLiteral && (n.parent.flags & 2 /* Const */)) constants.set(n.name.text, true);
  const isRandom = (n) => isCall(n) && /^(Math\.random|crypto\.getRandomValues|crypto\.randomInt)$/.test(src(n.expression));
  const grows = (n) => contains(n, (x) => (x.kind === K.BinaryExpression && [K.AsteriskAsteriskToken, K.LessThanLessThanToken, K.AsteriskEqualsToken].includes(x.operatorToken.kind))
    || (x.kind === K.BinaryExpression && x.operatorToken.kind === K.AsteriskToken && (src(x.left) === "2" || src(x.right) === "2"))
    || (isCall(x) && src(x.expression) === "Math.pow"));
  for (const n of all) {
    if (!isCall(n) || calleeName(n) !== "setTimeout" || n.arguments.length < 2 || !callsConnect(n.arguments[0])) continue;
    const d = n.arguments[1];
    if (d.kind === K.NumericLiteral || (d.kind === K.Identifier && constants.has(d.text))) { report(d, "ws-reconnect-constant"); continue; }
    // The code that computes the delay: the enclosing function, and the
    // functions called in the delay expression.
    const scope = [within(n, isFn) ?? sf, ...descendants(d).concat([d]).filter(isCall).map((c) => fnBody(c.expression)).filter(Boolean)];
    const exp = scope.some(grows), rnd = scope.some((s) => contains(s, isRandom));
    if (exp && !rnd) report(d, "ws-reconnect-nojitter");
    if (exp && rnd) {
      for (const s of scope) for (const x of descendants(s)) {
        if (isCall(x) && src(x.expression) === "Math.min" && x.arguments.some((a) => contains(a, isRandom) || jittered(s, a))) report(x, "ws-reconnect-cap");
      }
    }
  }
  function jittered(scope, a) {
    if (a.kind !== K.Identifier) return false;
    return descendants(scope).some((x) => x.kind === K.VariableDeclaration && x.name.kind === K.Identifier && x.name.text === a.text && x.initializer && contains(x.initializer, isRandom));
  }
  for (const s of sockets) {
    if (s.server || !s.key) continue;
    for (const h of handlers(s.key, "open")) {
      const f = fnBody(h);
      if (!f) continue;
      for (const x of descendants(f)) {
        if (within(x, isFn) !== f) continue; // not in a nested callback (a timer that waits for stability)
        if (x.kind === K.BinaryExpression && x.operatorToken.kind === K.EqualsToken && src(x.right) === "0" && counters.has(src(x.left))) report(x, "ws-reconnect-reset");
      }
    }
  }

  function descendants(root) { const out = []; root.forEachChild(function w(n) { out.push(n); n.forEachChild(w); }); return out; }
}
