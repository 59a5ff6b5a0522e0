"""The HTML of ``slmfactory report``: one page, inline CSS, no scripts, no external reference of any kind.

Why no template engine and no JavaScript: the page is a handful of sections built from escaped strings; a
browser, an e-mail client or a sandboxed viewer shows it the same way, and nothing on it can reach a network.
"""
from __future__ import annotations

import html
from typing import Any

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d2330;
background:#f4f6f9}
main{max-width:1140px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:24px;margin:6px 0 2px}h2{font-size:18px;margin:28px 0 10px;border-bottom:2px solid #dde3ec;
padding-bottom:4px}
.sub{color:#5b6579;margin:0 0 14px;word-break:break-all}
.facts{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.fact{background:#fff;border:1px solid #dde3ec;border-radius:8px;padding:8px 14px;min-width:110px}
.fact b{display:block;font-size:20px}.fact span{color:#5b6579;font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:14px}
figure{background:#fff;border:1px solid #dde3ec;border-radius:8px;margin:0;padding:10px}
figure img{max-width:100%;display:block;margin:0 auto}figcaption{color:#5b6579;font-size:12px;margin-top:4px}
table{border-collapse:collapse;background:#fff;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #dde3ec;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef2f7}td.n{text-align:right;font-variant-numeric:tabular-nums}
.card{background:#fff;border:1px solid #dde3ec;border-radius:8px;padding:12px 16px;margin:0 0 14px}
.card h3{font-size:14px;margin:0 0 6px;word-break:break-all}
.meta{color:#5b6579;font-size:12px}.chip{display:inline-block;background:#eef2f7;border-radius:10px;
padding:1px 8px;margin:2px 4px 2px 0;font-size:12px}
.text{font-size:15px;margin:6px 0}.mono{font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;
color:#39415a;word-break:break-all}
.player{display:flex;align-items:center;gap:6px}audio{width:100%;max-width:520px;height:34px;margin:4px 0}
.tl{position:relative;height:44px;background:#f7f9fc;border:1px solid #dde3ec;border-radius:4px;margin:6px 0}
.w{position:absolute;height:18px;font-size:11px;line-height:18px;overflow:hidden;white-space:nowrap;
background:#cfe0f5;border-left:2px solid #3b6ea8;padding-left:2px;box-sizing:border-box}
.w.b{top:23px;background:#f8dcc0;border-color:#d9822b}.w.a{top:3px}
.turn{border-left:3px solid #3b6ea8;padding:2px 10px;margin:8px 0}.turn.assistant{border-color:#d9822b}
.turn .role{font-weight:600;font-size:12px;text-transform:uppercase;color:#5b6579}
.err{color:#a33}details summary{cursor:pointer;color:#3b6ea8;font-size:12px}
"""


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def page(d: dict[str, Any]) -> str:
    """The whole page from the dict :func:`pipelines.report.write_report` gathers."""
    parts = [_header(d), _plots(d["plots"]), _tables(d), _errors(d["errors"]), _samples(d["samples"])]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{esc(d['title'])} - SLM Factory report"
            f"</title><style>{CSS}</style></head><body><main>{''.join(parts)}"
            "<p class=\"meta\">Written by <code>slmfactory report</code>: one self-contained file (plots and audio "
            "inline), no network needed.</p></main></body></html>\n")


def _fact(value: Any, label: str) -> str:
    return f"<div class=\"fact\"><b>{esc(value)}</b><span>{esc(label)}</span></div>"


def _header(d: dict[str, Any]) -> str:
    s, run = d["stats"], d["run"] or {}
    recipe = (run.get("recipe") or {}).get("name")
    counts = run.get("counts") or {}
    err_rows = (d["errors"] or {}).get("rows", counts.get("errors"))  # None: an export, no errors kept
    facts = [_fact(f"{s['rows']:,}", "rows"), _fact(_hours(s["seconds"]), "of audio")]
    if s["speaker_seconds"]:
        facts.append(_fact(f"{len(s['speaker_seconds']):,}", "speakers"))
    if err_rows is not None:
        facts.append(_fact(f"{err_rows:,}", "rejected rows"))
    if counts.get("inputs") is not None:
        facts.append(_fact(f"{counts['inputs']:,}", "inputs"))
    if run.get("wall_seconds") is not None:
        facts.append(_fact(f"{run['wall_seconds']:.0f} s", f"wall time ({run.get('executor', '?')})"))
    if s["durations"].seen:
        facts.append(_fact(f"{s['seconds'] / s['durations'].seen:.1f} s", "mean segment"))
    title = f"{recipe} · {d['title']}" if recipe else d["title"]
    cols = ", ".join(s["columns"])
    return (f"<h1>{esc(title)}</h1><p class=\"sub\">{esc(d['path'])}</p><div class=\"facts\">{''.join(facts)}</div>"
            + (f"<p class=\"meta\">columns: {esc(cols)}</p>" if cols else ""))


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _plots(plots: list[tuple[str, str]]) -> str:
    if not plots:
        return ""
    figs = "".join(f"<figure><img alt=\"{esc(_strip(cap))}\" src=\"{uri}\"><figcaption>{cap}</figcaption></figure>"
                   for cap, uri in plots)
    return f"<h2>Distributions</h2><div class=\"grid\">{figs}</div>"


def _strip(cap: str) -> str:
    return cap.replace("<code>", "").replace("</code>", "")


def _table(head: list[str], rows: list[list[Any]], numeric: set[int] = frozenset()) -> str:
    h = "".join(f"<th>{esc(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td{' class=n' if i in numeric else ''}>{esc(v)}</td>" for i, v in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _tables(d: dict[str, Any]) -> str:
    s, out = d["stats"], []
    for col in ("source", "tokenizer", "asr_backend", "aligner", "format", "task", "voice"):
        c = s["counts"].get(col)
        if c:
            out.append(f"<div><b>{esc(col)}</b>" + _table([col, "rows"], [[k, f"{v:,}"] for k, v in
                                                                          c.most_common(12)], {1}) + "</div>")
    if s["turns"]:
        out.append("<div><b>chat turns</b>" + _table(["role", "turns"], [[k, f"{v:,}"] for k, v in
                                                                         s["turns"].most_common()], {1}) + "</div>")
    pk = d["packed"]
    if pk:
        fm = pk.get("formats") or {}
        rows = [[f, f"{v.get('rows', 0):,}", f"{v.get('tokens', 0):,}", f"{v.get('token_share', 0):.2f}",
                 f"{v.get('configured_share', 0):.2f}"] for f, v in sorted(fm.items())]
        out.append(f"<div><b>packed training blocks</b> ({pk.get('num_blocks', '?')} blocks of "
                   f"{pk.get('context_length', '?')} tokens, {(pk.get('tokens') or {}).get('padding', 0):,} padding)"
                   + _table(["format", "rows", "tokens", "token share", "configured share"], rows, {1, 2, 3, 4})
                   + "</div>")
    if not out:
        return ""
    return "<h2>Counts</h2><div style=\"display:flex;flex-wrap:wrap;gap:24px\">" + "".join(out) + "</div>"


def _errors(e: dict[str, Any] | None) -> str:
    if not e:
        return ""
    if not e["rows"]:
        return "<h2>Errors</h2><p>No rejected rows: every input became a row of the manifest.</p>"
    by_stage = _table(["stage", "rejected rows"], [[k, f"{v:,}"] for k, v in e["by_stage"]], {1})
    reasons = _table(["rows", "stage", "example input", "reason (of that input)"],
                     [[f"{r['count']:,}", r["stage"], r["input"], r["reason"]] for r in e["reasons"]], {0})
    more = f" (the {len(e['reasons'])} commonest of {e['groups']} kinds)" if e["groups"] > len(e["reasons"]) else ""
    plural = "s" if e["rows"] != 1 else ""
    return (f"<h2>Errors: {e['rows']:,} rejected row{plural}</h2><p class=\"meta\">Every rejected input is a row of "
            f"<code>OUT/errors</code>; reasons are grouped with file names and numbers taken out{more}.</p>"
            f"{by_stage}{reasons}")


def _samples(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    return (f"<h2>Sample rows ({len(rows)}, evenly spaced over the manifest)</h2>"
            + "".join(_sample(r) for r in rows))


def _player(c: dict[str, Any] | None, row_id: Any) -> str:
    if not c:
        return ""
    if "error" in c:
        return f"<div class=\"err\">audio not playable: {esc(c['error'])}</div>"
    cut = f" (first {c['seconds']:.0f} s)" if c.get("cut") else ""
    return (f"<div class=\"player\"><audio controls preload=\"metadata\" data-id=\"{esc(row_id)}\" "
            f"data-seconds=\"{c['seconds']:.3f}\" src=\"{c['uri']}\"></audio>"
            f"<span class=\"meta\"> {c['seconds']:.2f} s{cut}</span></div>")


def _sample(r: dict[str, Any]) -> str:
    chips = [f"row {r['row_number']:,}"]
    for k, fmt in (("speaker", "speaker {}"), ("duration", "{:.2f} s"), ("start", "at {:.2f} s"),
                   ("format", "format {}"), ("task", "task {}"), ("voice", "voice {}"), ("source", "{}"),
                   ("asr_confidence", "ASR conf {:.2f}"), ("dnsmos_ovrl", "DNSMOS {:.2f}"),
                   ("chars_per_second", "{:.1f} chars/s")):
        if r.get(k) not in (None, ""):
            chips.append(fmt.format(r[k]))
    out = [f"<div class=\"card\"><h3>{esc(r.get('id'))}</h3>",
           "".join(f"<span class=\"chip\">{esc(c)}</span>" for c in chips), _player(r.get("clip"), r.get("id"))]
    if r.get("text"):
        out.append(f"<div class=\"text\">{esc(r['text'])}</div>")
    if r.get("words"):
        out.append(_timeline(r["words"], r.get("duration")))
    units = r.get("units")
    if units:
        more = f" … (+{len(units) - 60:,})" if len(units) > 60 else ""
        rate = f" at {r['unit_rate_hz']:g} Hz" if r.get("unit_rate_hz") else ""
        by = f" ({r['tokenizer']})" if r.get("tokenizer") else ""
        out.append(f"<div class=\"mono\">{len(units):,} units{esc(rate)}{esc(by)}: "
                   f"{esc(' '.join(map(str, units[:60])))}{more}</div>")
    if r.get("tokens"):
        t = r["tokens"]
        out.append(f"<div class=\"mono\">{len(t):,} tokens: {esc(' '.join(map(str, t[:40])))}"
                   f"{' …' if len(t) > 40 else ''}</div>")
    for t in r.get("turns") or []:
        role = esc(t["role"])
        out.append(f"<div class=\"turn {role}\"><div class=\"role\">{role}</div><div>{esc(t['text'])}</div>"
                   f"{_player(t['clip'], r.get('id'))}</div>")
    if r.get("more_turns"):
        out.append(f"<div class=\"meta\">… {r['more_turns']} more turns</div>")
    if r.get("audio_path"):
        out.append(f"<div class=\"meta\">audio: {esc(r['audio_path'])}</div>")
    return "".join(out) + "</div>"


def _timeline(words: list[dict[str, Any]], duration: float | None) -> str:
    """Words on a time axis (segment-relative seconds), in two lanes so neighbours' labels do not collide;
    the exact times are in the table under it."""
    end = max([float(duration or 0.0)] + [float(w.get("end") or 0.0) for w in words]) or 1.0
    spans = []
    for i, w in enumerate(words):
        a, b = float(w.get("start") or 0.0), float(w.get("end") or 0.0)
        left, width = 100 * a / end, max(0.4, 100 * (b - a) / end)
        spans.append(f"<span class=\"w {'ab'[i % 2]}\" style=\"left:{left:.2f}%;width:{width:.2f}%\" "
                     f"title=\"{esc(w.get('word'))} {a:.2f}-{b:.2f} s\">{esc(w.get('word'))}</span>")
    rows = [[w.get("word"), f"{float(w.get('start') or 0):.2f}", f"{float(w.get('end') or 0):.2f}",
             "" if w.get("score") is None else f"{float(w['score']):.2f}"] for w in words]
    return (f"<div class=\"meta\">word alignment ({len(words)} words, 0-{end:.2f} s)</div><div class=\"tl\">"
            + "".join(spans) + "</div><details><summary>word times</summary>"
            + _table(["word", "start s", "end s", "score"], rows, {1, 2, 3}) + "</details>")
