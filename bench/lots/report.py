"""A lot's report: the signed JSON lot record and a signed HTML page made from it alone, under
reports/ as lot-LOT.json and lot-LOT.html (`bench verify` checks both, like every document).

The record lists every sample meter with the run its result came from, the statistic, the plan's
constants, the decision, the plan and its citations, the seed and how the sample was drawn."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from bench.records.signing import KEY_TAG, SIGNATURE_TAG, Signer, sign_html, sign_record

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
{{ key_tag }}
{{ signature_tag }}
<title>Lot {{ r.lot.lot_id }}: {{ r.decision }}</title>
<style>
body { font-family: sans-serif; font-size: 10pt; margin: 1.5em; }
table { border-collapse: collapse; margin: 0.6em 0; } th, td { border: 1px solid #999; padding: 2px 6px; }
th { background: #eee; text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.ACCEPTED { color: #060; } .REJECTED { color: #a00; } .small { font-size: 8.5pt; color: #444; }
thead { display: table-header-group; }
</style></head><body>
<h1>Lot {{ r.lot.lot_id }}: <span class="{{ r.decision }}">{{ r.decision }}</span></h1>
<p>{{ r.reason }}</p>
<table>
<tr><th>meter type</th><td>{{ mt.manufacturer }} {{ mt.model }}, form {{ mt.form }},
 class {{ mt.accuracy_class }}</td></tr>
<tr><th>lot</th><td>{{ r.lot.size }} meters, created {{ r.lot.created_at }} from {{ r.lot.serials_file }}
 (SHA-256 {{ r.lot.serials_sha256[:16] }}...)</td></tr>
<tr><th>plan</th><td>{{ d.plan.title }} ({{ d.plan.name }}): inspection level {{ d.plan.inspection_level }},
 AQL {{ d.plan.aql }} %{% if d.plan.form %}, form {{ d.plan.form }}{% endif %}</td></tr>
<tr><th>tables</th><td>{{ d.plan.tables.name }}; {{ d.plan.tables.standard }}</td></tr>
<tr><th>severity</th><td>drawn under {{ r.severity.drawn_under }} inspection; after this lot:
 {{ r.severity.after }}{% if r.severity.why %} ({{ r.severity.why }}){% endif %}</td></tr>
<tr><th>sample</th><td>code letter {{ d.code_letter }}{% if d.cell.letter != d.code_letter %} (plan of letter
 {{ d.cell.letter }}){% endif %}, n = {{ d.sample_size }}{% if d.whole_lot %} (the whole lot){% endif %};
 {% if d.cell.k is defined %}k = {{ d.cell.k }}, M = {{ d.cell.m_pct }} %{% else %}Ac = {{ d.cell.ac }},
 Re = {{ d.cell.re }}{% endif %}</td></tr>
<tr><th>draw</th><td>seed {{ d.seed }}, {{ d.drawn_at }}: {{ d.method }}{% if d.reason %};
 replaced an earlier draw: {{ d.reason }}{% endif %}</td></tr>
<tr><th>judged</th><td>{{ r.judged_at }}</td></tr>
</table>
{% if r.statistics %}
<h2>Statistic</h2>
<table><thead><tr><th>point</th><th>n</th><th>mean %</th><th>s %</th><th>L %</th><th>U %</th><th>Q_L</th>
<th>Q_U</th><th>p_L %</th><th>p_U %</th><th>p %</th><th>M %</th><th>k</th><th>decision</th><th>limits</th></tr></thead>
{% for s in r.statistics %}<tr><td>{{ s.point }}</td><td class="n">{{ s.n }}</td><td class="n">{{ fmt(s.mean, 4) }}</td>
<td class="n">{{ fmt(s.sd, 3) }}</td><td class="n">{{ fmt(s.lower, 3) }}</td><td class="n">{{ fmt(s.upper, 3) }}</td>
<td class="n">{{ fmt(s.q_lower, 3) }}</td><td class="n">{{ fmt(s.q_upper, 3) }}</td>
<td class="n">{{ fmt(s.p_lower_pct, 3) }}</td><td class="n">{{ fmt(s.p_upper_pct, 3) }}</td>
<td class="n">{{ fmt(s.p_pct, 3) }}</td><td class="n">{{ s.m_pct }}</td><td class="n">{{ s.k }}</td>
<td class="{{ 'ACCEPTED' if s.accepted else 'REJECTED' }}">{{ s.reason }}</td>
<td class="small">{{ s.limits_from }}</td></tr>
{% endfor %}</table>
<p class="small">Form {{ '2 (M)' if d.plan.form == 'M' else '1 (k)' }}: the estimate p of the lot's percent beyond
the limits is the standards' Table B-5 estimate, unrounded (I_x((n-2)/2, (n-2)/2),
x = 1/2 - Q sqrt(n) / (2 (n - 1))); k is shown for reference.</p>
{% else %}
<h2>Nonconforming meters</h2>
<p>d = {{ r.attributes.d }} of n = {{ r.attributes.n }} (Ac = {{ r.attributes.ac }}, Re = {{ r.attributes.re }}):
{{ r.attributes.nonconforming | join(', ') or 'none' }}</p>
{% endif %}
<h2>Sample meters</h2>
<table><thead><tr><th>#</th><th>serial</th><th>run</th><th>started</th>
{% for p in points %}<th>{{ p }} %</th><th>U %</th><th>limit</th><th>verdict</th>{% endfor %}
<th>certified</th><th>manufacturer's</th><th>later runs (not counted)</th></tr></thead>
{% for m in r.sample %}<tr><td class="n">{{ m.order }}</td><td>{{ m.serial }}</td><td>{{ m.run_id }}</td>
<td>{{ m.run_started_at }}</td>
{% for p in points %}{% set v = m.get('values', {}).get(p, {}) %}<td class="n">{{ fmt(v.value_pct, 4) }}</td>
<td class="n">{{ fmt(v.u_pct, 4) }}</td><td class="n">±{{ v.limit_pct }}</td><td>{{ v.verdict }}</td>{% endfor %}
<td>{{ 'yes' if m.certified else 'no' }}</td>
<td class="small">{% for k, v in m.manufacturer.items() %}{{ k }} {{ fmt(v, 4) }} {% endfor %}</td>
<td class="small">{% for o in m.other_runs %}{{ o.run_id[:8] }} ({{ o.status }}) {% endfor %}</td></tr>
{% endfor %}</table>
<h2>Citations</h2>
<p class="small">Plan: {{ d.plan.provenance }}</p>
<p class="small">Tables: {{ d.plan.tables.provenance }}</p>
{% for name, text in d.plan.tables.by_table.items() %}<p class="small">{{ name }}: {{ text }}</p>{% endfor %}
<p class="small">Switching rules: {{ d.plan.switching.provenance }}</p>
<p class="small">Signed with the lab's Ed25519 key {{ fingerprint }} (public key in this page's head); check with
<code>bench verify</code>.</p>
</body></html>
"""


def _fmt(value: Any, digits: int) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:+.{digits}f}" if digits >= 4 else f"{value:.{digits}f}"


def finite(data: Any) -> Any:
    """The record with infinities spelled as text: JSON has no number for them (a sample with no
    spread has an infinite quality index)."""
    if isinstance(data, float) and not math.isfinite(data):
        return "inf" if data > 0 else "-inf" if data < 0 else "nan"
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, list):
        return [finite(v) for v in data]
    return data


def write_report(record: dict[str, Any], out: Path, signer: Signer) -> list[Path]:
    """The signed JSON record and the signed HTML page, from the record alone (same bytes every time)."""
    out.mkdir(parents=True, exist_ok=True)
    lot_id = record["lot"]["lot_id"]
    json_path, html_path = out / f"lot-{lot_id}.json", out / f"lot-{lot_id}.html"
    json_path.write_text(json.dumps(sign_record(record, signer), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    environment = Environment(autoescape=True, keep_trailing_newline=True)
    points = [q["point"] for q in record["draw"]["plan"]["quantities"]]
    html = environment.from_string(_TEMPLATE).render(
        r=record, d=record["draw"], mt=record["lot"]["meter_type"], points=points, fmt=_fmt,
        key_tag=Markup(KEY_TAG.format(signer.public_key_b64)), signature_tag=Markup(SIGNATURE_TAG.format("")),
        fingerprint=signer.fingerprint)
    html_path.write_text(sign_html(html, signer), encoding="utf-8")
    return [json_path, html_path]
