// The pages every Cairn node serves: explorer, verifier, trace, regulator.
// Everything shown comes from this node's /v1 API; every check is made by
// the node with the same code as `cairn verify` and `cairn trace`. No
// external resources; untrusted text is only ever set as textContent.
"use strict";

const main = document.getElementById("main");

// el("tag.class", {attr: value}, child, …): children are nodes or text.
function el(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split(".");
  const node = document.createElement(tag);
  if (classes.length) node.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const message = body && body.error ? `${body.error.message} (${body.error.code})` : response.statusText;
    throw new Error(message);
  }
  return body;
}

function short(hash) { return hash ? `${hash.slice(0, 10)}…${hash.slice(-6)}` : ""; }
function when(rfc3339) { return rfc3339 ? rfc3339.replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC") : ""; }
function errorBox(e) { return el("p.error", {}, `出错 Error: ${e.message}`); }

const CHECKS = {
  format: "格式 Format",
  commitment: "承诺值 Commitment",
  finality: "最终性 Finality",
  inclusion: "上链 Inclusion",
  accreditation: "发证资质 Accreditation",
  status: "状态 Status",
  bundle_age: "证明时效 Bundle age",
  events: "事件证明 Events",
};

const STATUS = {
  active: "有效 active",
  suspended: "暂扣 suspended",
  revoked: "已吊销/撤销 revoked",
  superseded: "已换发 superseded",
  expired: "已过期 expired",
};

const REASONS = {
  annulled: "撤销 annulled",
  cancelled: "注销 cancelled",
  revoked_as_penalty: "吊销 revoked as a penalty",
  lapsed: "失效 lapsed",
  other: "其他 other",
};

const KINDS = {
  anchored: "签发 anchored",
  suspended: "暂扣 suspended",
  reinstated: "发还 reinstated",
  revoked: "吊销/撤销 revoked",
  superseded: "换发 superseded",
};

function statusText(status) {
  if (!status) return "";
  let text = STATUS[status.status] || status.status;
  if (status.reason) text += ` · ${REASONS[status.reason] || status.reason}`;
  if (status.by) text += ` → ${short(status.by)}`;
  return text;
}

function statusPill(status) {
  return el(`span.pill.${status ? status.status : ""}`, {}, statusText(status));
}

function table(headers, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c))))));
}

// Issuer id → name, fetched once per page.
let issuerNames = null;
function issuerName(id) {
  return issuerNames && issuerNames.has(id) ? `${issuerNames.get(id)} (${id})` : id;
}
async function loadIssuerNames() {
  if (issuerNames) return;
  try {
    const list = await api("/v1/issuers");
    issuerNames = new Map(list.issuers.map((i) => [i.id, i.name]));
  } catch (_) { /* ids only */ }
}

function traceLink(commitment) {
  return el("a.hash", { href: `/trace/${commitment}`, title: commitment }, short(commitment));
}

// ---------------------------------------------------------------- explorer

async function explorer() {
  main.replaceChildren(el("h1", {}, "区块浏览 Explorer"));
  const stats = el("div.card.grid", { id: "stats" });
  const blocks = el("div.card", { id: "blocks" }, el("p.muted", {}, "…"));
  const validators = el("div.card", { id: "validators" });
  const issuers = el("div.card", { id: "issuers" });
  const types = el("div.card", { id: "types" });
  const evidence = el("div.card", { id: "evidence" });
  main.append(stats,
    el("h2", {}, "最新区块 Latest blocks"), blocks,
    el("h2", {}, "验证节点 Validators"), validators,
    el("h2", {}, "发证机关 Issuers"), issuers,
    el("h2", {}, "证照类型 Credential types"), types,
    el("h2", {}, "验证节点违规证据 Evidence of validator misbehaviour"), evidence);

  const refresh = async () => {
    try {
      const [status, latest] = await Promise.all([api("/v1/status"), api("/v1/blocks?limit=15")]);
      stats.replaceChildren(
        el("div.stat", {}, el("b", { id: "height" }, status.height), "高度 Height"),
        el("div.stat", {}, el("b", {}, status.validators.length), "验证节点 Validators"),
        el("div.stat", {}, el("b", {}, status.peers), "连接 Peers"),
        el("div.stat", {}, el("b", {}, status.role), "本节点 This node"),
        el("div.stat", {}, el("b", {}, status.chain_id), "链 Chain"));
      blocks.replaceChildren(table(
        ["高度 Height", "时间 Time", "交易 Txs", "提议者 Proposer", "签名 Signatures", "哈希 Hash"],
        latest.blocks.map((b) => [b.height, when(b.time), b.transactions, b.proposer || "", `${b.signatures} (round ${b.round})`, el("span.hash", { title: b.hash }, short(b.hash))])));
      return status;
    } catch (e) {
      blocks.replaceChildren(errorBox(e));
      return null;
    }
  };
  const status = await refresh();
  if (status) {
    validators.replaceChildren(table(["名称 Name", "地区 Region", "权重 Power", "公钥 Key"],
      status.validators.map((v) => [v.name, v.region, v.voting_power, el("span.hash", { title: v.public_key }, short(v.public_key))])));
  }
  try {
    const [is, ts, ev] = await Promise.all([api("/v1/issuers"), api("/v1/types"), api("/v1/evidence")]);
    issuers.replaceChildren(table(["名称 Name", "代码 Id", "地区 Region", "可签发 May issue", "密钥 Keys"],
      is.issuers.map((i) => [i.name, el("code", {}, i.id), i.region, i.accredited_types.join(", "), i.keys.length])));
    types.replaceChildren(table(["代码 Code", "名称 Name", "字段 Fields", "发证机关 Issuers"],
      ts.types.map((t) => [el("code", {}, t.code), t.name, t.fields.join(", "), t.issuers.length])));
    evidence.replaceChildren(ev.evidence.length === 0
      ? el("p.muted", { id: "no-evidence" }, "无 None: no validator has signed two conflicting messages.")
      : table(["类型 Kind", "验证节点 Validator", "高度 Height", "轮次 Round"],
        ev.evidence.map((e) => [e.kind, el("span.hash", {}, e.validator), e.height, e.round])));
  } catch (e) {
    issuers.replaceChildren(errorBox(e));
  }
  const timer = setInterval(() => {
    if (!document.getElementById("blocks")) clearInterval(timer);
    else refresh();
  }, 3000);
}

// ---------------------------------------------------------------- verifier

function renderVerdict(out, result) {
  const current = result.current;
  const valid = current.valid === true;
  const statusCheck = (current.checks || []).find((c) => c.name === "status");
  const failure = (current.checks || []).find((c) => !c.passed);
  const headline = valid
    ? "✓ 有效 VALID"
    : `✗ 无效 NOT VALID${current.status ? ` — ${statusText(current.status)}` : ""}`;
  const why = valid
    ? "证照真实、已上链确认、发证机关具备资质且现行有效。Authentic, finalized, issued by an accredited issuer, in force."
    : `原因 Reason: ${failure ? `${CHECKS[failure.name] || failure.name}: ${failure.detail}` : "unknown"}`;
  out.replaceChildren(
    el(`div.verdict.${valid ? "valid" : "invalid"}`, { id: "verdict-banner", "data-valid": String(valid) },
      headline, el("small", {}, why)),
    el("h2", {}, "出示的信息 Disclosed"),
    el("div.card", {},
      table(["字段 Field", "值 Value"], result.disclosed.map((d) => [d.name, d.value])),
      el("p.muted", {}, `${result.credential_type} · 发证机关 issuer ${issuerName(result.issuer)} · ${result.disclosed.length} / ${result.field_count} 字段 fields disclosed`)),
    el("h2", {}, "逐项检查 Checks (本节点最新状态 this node's latest finalized state)"),
    el("ul.checks.card", { id: "checks" }, (current.checks || []).map((c) =>
      el("li", { "data-check": c.name, "data-passed": String(c.passed) },
        el(`span.mark.${c.passed ? "ok" : "bad"}`, {}, c.passed ? "✓" : "✗"),
        el("b", {}, CHECKS[c.name] || c.name),
        el("span.detail", {}, c.detail)))));
  if (statusCheck && current.since) {
    out.append(el("p.muted", {}, `状态起始 Since ${when(current.since)}`));
  }
  if (result.stapled) {
    const same = result.stapled.valid === current.valid;
    out.append(el("p.muted", { id: "stapled" }, same
      ? `随附证明 The stapled proof bundle (height ${result.stapled.height}) agrees.`
      : `注意 Note: the stapled proof bundle (height ${result.stapled.height}) says ${result.stapled.valid ? "valid" : "not valid"}; the node's latest state above is newer and prevails.`));
  }
}

function verifier() {
  const text = el("textarea", { id: "presentation", placeholder: "{\"presentation\": …, \"bundle\": …}", spellcheck: "false" });
  const file = el("input", { type: "file", id: "file", accept: ".json,application/json" });
  const out = el("div", { id: "verdict", "data-state": "idle" });
  const button = el("button", { id: "verify-button", type: "button" }, "核验 Verify");
  const drop = el("div.drop", { id: "drop" },
    "把出示文件拖到这里，或 Drop a presentation file here, or ",
    el("label", {}, el("u", {}, "选择文件 choose one"), " ", file));

  const run = async () => {
    if (!text.value.trim()) {
      out.replaceChildren(el("p.error", {}, "请先粘贴或拖入出示文件 Paste or drop a presentation file first."));
      return;
    }
    button.disabled = true;
    out.dataset.state = "busy";
    out.replaceChildren(el("p.muted", {}, "核验中 Verifying…"));
    try {
      await loadIssuerNames();
      const result = await api("/v1/verify", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: text.value,
      });
      renderVerdict(out, result);
      out.scrollIntoView({ block: "start" });
    } catch (e) {
      out.replaceChildren(errorBox(e));
    } finally {
      out.dataset.state = "done";
      button.disabled = false;
    }
  };
  const load = async (f) => {
    if (!f) return;
    text.value = await f.text();
    run();
  };
  button.addEventListener("click", run);
  file.addEventListener("change", () => load(file.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    load(e.dataTransfer.files[0]);
  });
  main.replaceChildren(
    el("h1", {}, "核验电子证照 Verify a license"),
    el("p.muted", {}, "出示文件由本节点按与 cairn verify 相同的代码核验，不保存、不记录。The node checks the presentation with the same code as `cairn verify` and keeps nothing of it. To show it to no node at all, use `cairn verify` offline."),
    el("div.card", {}, drop, text, el("p", {}, button)),
    out);
}

// ---------------------------------------------------------------- trace

async function tracePage(commitment) {
  const input = el("input", { type: "text", id: "commitment", size: "66", placeholder: "承诺值 commitment (64 hex)", value: commitment || "" });
  const out = el("div", { id: "trace", "data-state": "idle" });
  const go = el("button", { id: "trace-button", type: "button" }, "追溯 Trace");
  const run = async () => {
    const c = input.value.trim();
    if (!c) return;
    if (location.pathname !== `/trace/${c}`) history.replaceState(null, "", `/trace/${c}`);
    out.dataset.state = "busy";
    out.replaceChildren(el("p.muted", {}, "…"));
    try {
      const [t] = await Promise.all([api(`/v1/credentials/${encodeURIComponent(c)}/trace`), loadIssuerNames()]);
      const r = t.record;
      out.replaceChildren(
        el(`div.verdict.${t.verified ? "valid" : "invalid"}`, { id: "trace-banner", "data-verified": String(t.verified) },
          t.verified ? "✓ 全部事件已验证 Every event proven" : "✗ 证明未通过 A proof failed",
          el("small", {}, `${r.credential_type} · 发证机关 issuer ${issuerName(r.issuer)} · 当前状态 status `, statusPill(r.status),
            r.valid_until ? ` · 有效期至 valid until ${when(r.valid_until)}` : "")),
        el("ul.checks.card", {}, t.checks.map((c) => el("li", {},
          el(`span.mark.${c.passed ? "ok" : "bad"}`, {}, c.passed ? "✓" : "✗"),
          el("b", {}, CHECKS[c.name] || c.name), el("span.detail", {}, c.detail)))),
        el("h2", {}, "生命周期 Lifecycle"),
        el("div.card", {}, table(
          ["", "高度 Height", "时间 Time", "事件 Event", "机关 Agency", "证明 Proof"],
          t.events.map((e) => [
            el(`span.mark.${e.proof.included ? "ok" : "bad"}`, {}, e.proof.included ? "✓" : "✗"),
            e.height, when(e.time),
            [KINDS[e.event.kind] || e.name, e.event.reason ? ` · ${REASONS[e.event.reason] || e.event.reason}` : "",
              e.event.by ? [" → ", traceLink(e.event.by)] : "", e.event.renews ? [" ← ", traceLink(e.event.renews)] : ""],
            issuerName(e.actor),
            el("span.muted", {}, e.proof.detail),
          ]))));
    } catch (e) {
      out.replaceChildren(errorBox(e));
    } finally {
      out.dataset.state = "done";
    }
  };
  go.addEventListener("click", run);
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") run(); });
  main.replaceChildren(
    el("h1", {}, "证照追溯 Trace a license"),
    el("div.card.row", {}, input, go),
    out);
  if (commitment) run();
}

// ---------------------------------------------------------------- regulator

async function regulator() {
  const issuer = el("select", { id: "q-issuer" }, el("option", { value: "" }, "全部 all"));
  const type = el("select", { id: "q-type" }, el("option", { value: "" }, "全部 all"));
  const kinds = Object.entries(KINDS).map(([k, label]) =>
    el("label", {}, el("span", {}, el("input", { type: "checkbox", value: k, "data-kind": k }), ` ${label}`)));
  const from = el("input", { type: "datetime-local", id: "q-from" });
  const to = el("input", { type: "datetime-local", id: "q-to" });
  const out = el("div.card", { id: "events", "data-state": "idle" });
  const more = el("button", { id: "more", type: "button", hidden: true }, "更多 More");
  let next = null;
  let rows = [];
  let latest = 0; // only the newest search's answer is shown

  const params = () => {
    const p = new URLSearchParams();
    if (issuer.value) p.set("issuer", issuer.value);
    if (type.value) p.set("type", type.value);
    const ks = kinds.map((l) => l.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    if (ks.length) p.set("kind", ks.join(","));
    if (from.value) p.set("from", new Date(from.value).toISOString());
    if (to.value) p.set("to", new Date(to.value).toISOString());
    return p;
  };
  const search = async (append) => {
    const p = params();
    if (append && next) p.set("after", next);
    const mine = ++latest;
    out.dataset.state = "busy";
    try {
      const [page] = await Promise.all([api(`/v1/events?${p}`), loadIssuerNames()]);
      if (mine !== latest) return;
      rows = append ? rows.concat(page.events) : page.events;
      next = page.next;
      more.hidden = !next;
      out.replaceChildren(rows.length === 0
        ? el("p.muted", {}, "没有符合条件的事件 No events match.")
        : table(["高度 Height", "时间 Time", "事件 Event", "证照 Credential", "类型 Type", "机关 Issuer"],
          rows.map((e) => [e.height, when(e.time),
            [KINDS[e.kind] || e.kind, e.reason ? ` · ${REASONS[e.reason] || e.reason}` : ""],
            traceLink(e.commitment), e.credential_type, issuerName(e.issuer)])));
    } catch (e) {
      if (mine === latest) out.replaceChildren(errorBox(e));
    } finally {
      if (mine === latest) out.dataset.state = "done";
    }
  };
  const go = el("button", { id: "search", type: "button" }, "查询 Search");
  go.addEventListener("click", () => search(false));
  more.addEventListener("click", () => search(true));
  const evidence = el("div.card", { id: "evidence" });
  main.replaceChildren(
    el("h1", {}, "监管查询 Regulator queries"),
    el("div.card", {},
      el("div.row", {},
        el("label", {}, "发证机关 Issuer", issuer),
        el("label", {}, "证照类型 Type", type),
        el("label", {}, "起 From", from),
        el("label", {}, "止 To", to)),
      el("div.row", {}, kinds),
      go),
    out, more,
    el("h2", {}, "验证节点违规证据 Evidence of validator misbehaviour"), evidence);
  try {
    const [is, ts, ev] = await Promise.all([api("/v1/issuers"), api("/v1/types"), api("/v1/evidence")]);
    for (const i of is.issuers) issuer.append(el("option", { value: i.id }, `${i.name} (${i.id})`));
    for (const t of ts.types) type.append(el("option", { value: t.code }, `${t.name} (${t.code})`));
    evidence.replaceChildren(ev.evidence.length === 0
      ? el("p.muted", {}, "无 None.")
      : table(["类型 Kind", "验证节点 Validator", "高度 Height", "轮次 Round"],
        ev.evidence.map((e) => [e.kind, el("span.hash", {}, e.validator), e.height, e.round])));
  } catch (e) {
    out.replaceChildren(errorBox(e));
  }
  search(false);
}

// ---------------------------------------------------------------- routing

function route() {
  const path = location.pathname.replace(/\/+$/, "") || "/";
  let page = "explorer";
  if (path === "/verify") { page = "verify"; verifier(); }
  else if (path === "/trace" || path.startsWith("/trace/")) { page = "trace"; tracePage(decodeURIComponent(path.slice(7))); }
  else if (path === "/regulator") { page = "regulator"; regulator(); }
  else explorer();
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("current", a.dataset.page === page);
  api("/v1/status").then((s) => {
    document.getElementById("footer").textContent =
      `${s.chain_id} · genesis ${short(s.genesis_hash)} · 高度 height ${s.height} · 节点 node ${short(s.peer_id)}`;
  }).catch(() => {});
}

route();
