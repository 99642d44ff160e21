"""The event catalogue as one self-contained HTML page.

The page has no external assets (inline CSS, no scripts, no fonts or CDNs), so it can be
opened from a file, attached to a ticket or served by ``up``. It is rendered with the
standard library: :class:`string.Template` fills the frame (``page.html`` next to this
module), and every value from the deployment goes through :func:`html.escape` in the
helpers below, the one place text enters markup. A template engine would add a dependency
for one page whose loops are plainer in Python.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape
from importlib import resources
from itertools import groupby
from string import Template

from eventplatform.catalogue.curl import curl_command
from eventplatform.catalogue.model import (
    EventCatalogue,
    EventTypeView,
    FieldView,
    Participant,
    WebhookRoute,
)

__all__ = ["event_anchor", "render_html"]


def render_html(catalogue: EventCatalogue) -> str:
    """The catalogue page of ``catalogue``."""
    frame = Template(resources.files(__package__).joinpath("page.html").read_text("utf-8"))
    content = [_header(catalogue)]
    content += [_event(catalogue, event) for event in catalogue.events]
    content.append(_topics(catalogue))
    return frame.substitute(
        title=_e(catalogue.title),
        version=_e(catalogue.version),
        sidebar=_sidebar(catalogue),
        content="\n".join(content),
    )


def event_anchor(full_name: str) -> str:
    """The fragment id of an event type's section."""
    return "event-" + full_name


_REQUIRED = '<span class="req">required</span>'


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _span(css_class: str, text: object) -> str:
    return f'<span class="{css_class}">{_e(text)}</span>'


def _sidebar(catalogue: EventCatalogue) -> str:
    parts = ["<h3>Events</h3>"]
    for namespace, events in groupby(catalogue.events, key=lambda e: e.namespace):
        parts.append(f'<div class="ns">{_e(namespace or "(no namespace)")}</div><ul>')
        parts += [
            f'<li><a href="#{_e(event_anchor(e.full_name))}">{_e(e.name)}</a></li>' for e in events
        ]
        parts.append("</ul>")
    if catalogue.topics:
        parts.append("<h3>Topics</h3><ul>")
        parts += [
            f'<li><a href="#topic-{_e(topic)}"><code>{_e(topic)}</code></a></li>'
            for topic in catalogue.topics
        ]
        parts.append("</ul>")
    parts.append(
        '<h3>Machine-readable</h3><ul><li><a href="asyncapi.json">asyncapi.json</a></li></ul>'
    )
    return "\n".join(parts)


def _header(catalogue: EventCatalogue) -> str:
    stats = [
        (len(catalogue.events), "event types"),
        (len(catalogue.topics), "topics"),
        (len(catalogue.routes), "webhook routes"),
        (len({(p.name, p.kind) for p in catalogue.participants}), "producers & consumers"),
    ]
    cells = "".join(
        f'<div class="stat"><b>{n}</b><span>{_e(label)}</span></div>' for n, label in stats
    )
    where = []
    if catalogue.bootstrap_servers:
        where.append(f"Kafka <code>{_e(catalogue.bootstrap_servers)}</code>")
    where.append(f"subjects by the <code>{_e(catalogue.subject_strategy)}</code> strategy")
    registry = catalogue.registry
    if registry.consulted:
        notice = (
            '<div class="notice good">Versions and compatibility levels from the schema '
            f"registry at <code>{_e(registry.url or '')}</code>.</div>"
        )
    else:
        notice = (
            '<div class="notice warn">Versions are <b>from the catalogue files</b> (the '
            "<code>.avsc</code> in <code>schemas/</code>), not a registry: "
            f"{_e(registry.note)}.</div>"
        )
    return (
        '<header class="top">'
        f"<h1>{_e(catalogue.title)}</h1>"
        "<p>The events this platform offers: Avro records on Kafka topics with CloudEvents "
        f"headers. {'; '.join(where)}.</p>"
        f'<div class="stats">{cells}</div>{notice}</header>'
    )


def _event(catalogue: EventCatalogue, event: EventTypeView) -> str:
    topics = (
        "".join(f'<a class="chip topic" href="#topic-{_e(t)}">{_e(t)}</a>' for t in event.topics)
        or '<span class="chip">on no topic of this deployment</span>'
    )
    example = json.dumps(event.example, indent=2, ensure_ascii=False)
    parts = [
        f'<section class="card event" id="{_e(event_anchor(event.full_name))}">',
        f'<div class="title-row"><h2>{_e(event.name)}</h2>'
        f'<span class="fullname">{_e(event.full_name)}</span></div>',
        f'<p class="doc">{_e(event.doc) if event.doc else "<span class=none>No doc.</span>"}</p>',
        f'<div class="chips">{topics}{_version_chips(catalogue, event)}</div>',
        '<div class="flow">',
        f"<div><h4>Published by</h4>{_participants(event.publishers)}</div>",
        f"<div><h4>Consumed by</h4>{_participants(event.consumers)}</div>",
        "</div>",
        f"<h4>Fields</h4>{_fields(event.fields, event.full_name)}",
        f"<h4>Example</h4><pre><code>{_e(example)}</code></pre>",
    ]
    if event.routes:
        parts.append("<h4>Webhook routes</h4>")
        parts += [_route(route, event) for route in event.routes]
    parts.append(_versions(catalogue, event))
    parts.append(f'<p class="sub">Source: <code>{_e(event.source)}</code></p>')
    parts.append("</section>")
    return "\n".join(parts)


def _version_chips(catalogue: EventCatalogue, event: EventTypeView) -> str:
    if not catalogue.registry.consulted:
        return '<span class="chip warn">catalogue file · not checked against a registry</span>'
    if not event.subjects:
        return '<span class="chip warn">not registered</span>'
    chips = []
    for subject in event.subjects:
        latest = subject.versions[-1] if subject.versions else "–"
        chips.append(
            f'<span class="chip good" title="subject {_e(subject.subject)}">'
            f"v{_e(latest)} · {_e(subject.compatibility or 'level unknown')}</span>"
        )
    return "".join(chips)


def _participants(participants: Sequence[Participant]) -> str:
    if not participants:
        return '<p class="none">Nobody in this deployment.</p>'
    items = []
    for p in participants:
        group = f" · group <code>{_e(p.group_id)}</code>" if p.group_id else ""
        items.append(
            f'<li><span class="who">{_e(p.name)}</span> <span class="chip">{_e(p.kind)}</span>'
            f' <span class="what">on <code>{_e(p.topic)}</code>{group}'
            f"{'<br>' + _e(p.detail) if p.detail else ''}</span></li>"
        )
    return f"<ul>{''.join(items)}</ul>"


def _fields(fields: Iterable[FieldView], root: str) -> str:
    parts = []
    for record, group in groupby(fields, key=lambda f: f.record):
        if record != root:
            parts.append(
                f'<p class="sub">Record <code>{_e(record.rpartition(".")[2])}</code> '
                f'<span class="fullname">{_e(record)}</span></p>'
            )
        rows = []
        for f in group:
            logical = _span("logical", f.logical_type) if f.logical_type else ""
            symbols = _span("symbols", " | ".join(f.symbols)) if f.symbols else ""
            default = f"<code>{_e(f.default)}</code>" if f.default is not None else _REQUIRED
            rows.append(
                f'<tr><td class="name">{_e(f.name)}</td>'
                f'<td class="type"><code>{_e(f.type)}</code>{logical}{symbols}</td>'
                f"<td>{_e(f.doc)}</td><td>{default}</td></tr>"
            )
        parts.append(
            "<table><thead><tr><th>Field</th><th>Type</th><th>Description</th><th>Default</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    return "\n".join(parts)


def _route(route: WebhookRoute, event: EventTypeView) -> str:
    auth = []
    if route.api_key:
        auth.append('<span class="chip">API key: X-API-Key or Bearer</span>')
    if route.signed:
        auth.append('<span class="chip">Standard Webhooks signature</span>')
    if route.anonymous or not (route.api_key or route.signed):
        auth.append('<span class="chip warn">anonymous allowed</span>')
    return (
        f'<div class="route"><div><span class="url">POST {_e(route.url)}</span> '
        f"→ <code>{_e(route.topic)}</code> · connector <b>{_e(route.connector)}</b></div>"
        f'<div class="chips">{"".join(auth)}</div>'
        f'<pre class="curl"><code>{_e(curl_command(route, event.example))}</code></pre></div>'
    )


def _versions(catalogue: EventCatalogue, event: EventTypeView) -> str:
    if not catalogue.registry.consulted:
        return (
            '<h4>Versions</h4><p class="sub">From the catalogue file only: versions and the '
            "compatibility level are the registry's to say, and this page was built without "
            f"one ({_e(catalogue.registry.note)}).</p>"
        )
    if not event.subjects:
        return '<h4>Versions</h4><p class="none">No registry subject holds this type yet.</p>'
    rows = []
    for s in event.subjects:
        file_version = (
            f"v{s.file_version}" if s.file_version is not None else _span("req", "not registered")
        )
        rows.append(
            f'<tr><td class="name">{_e(s.subject)}</td>'
            f"<td>{_e(', '.join(f'v{v}' for v in s.versions))}</td>"
            f"<td>{_e(s.latest_id if s.latest_id is not None else '–')}</td>"
            f"<td>{_e(s.compatibility or '–')}</td><td>{file_version}</td></tr>"
        )
    return (
        "<h4>Versions (schema registry)</h4><table><thead><tr><th>Subject</th><th>Versions</th>"
        "<th>Latest id</th><th>Compatibility</th><th>This file</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _names(catalogue: EventCatalogue, topic: str, action: str) -> str:
    names = {p.name for p in catalogue.participants if p.topic == topic and p.action == action}
    return ", ".join(_e(n) for n in sorted(names)) or '<span class="none">none</span>'


def _topics(catalogue: EventCatalogue) -> str:
    if not catalogue.topics:
        return ""
    rows = []
    for topic, names in catalogue.topics.items():
        events = (
            ", ".join(
                f'<a href="#{_e(event_anchor(n))}">{_e(n.rpartition(".")[2])}</a>' for n in names
            )
            or '<span class="none">unnamed types</span>'
        )
        senders = _names(catalogue, topic, "send")
        receivers = _names(catalogue, topic, "receive")
        rows.append(
            f'<tr id="topic-{_e(topic)}"><td class="name">{_e(topic)}</td><td>{events}</td>'
            f"<td>{senders}</td><td>{receivers}</td></tr>"
        )
    return (
        '<section class="card" id="topics"><h2>Topics</h2>'
        "<table><thead><tr><th>Topic</th><th>Event types</th><th>Published by</th>"
        f"<th>Consumed by</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )
