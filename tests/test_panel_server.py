"""The panel's server on a real loopback socket: its page and assets (local, no CDN), the event
stream as server-sent events from where a page is, the token, the abort and the answers."""
import json
import re
import threading
import urllib.error
import urllib.request

import pytest

from bench.operator import inspection_form
from bench.operator.events import EventStream
from bench.operator.panel.server import PanelServer, is_loopback
from bench.operator.prompts import PromptDesk
from tests.test_operator_events import POSITIONS, TERMINALS


@pytest.fixture
def stream():
    return EventStream()


@pytest.fixture
def serve(stream):
    started = []

    def start(**kwargs):
        server = PanelServer(stream.after, host="127.0.0.1", port=0, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def fetch(url, data=None):
    headers = {"Content-Type": "application/json"} if data else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def sse(url, count):
    """The first ``count`` events of the stream, as the page's EventSource reads them."""
    found = []
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/event-stream")
        for line in reply:
            if line.startswith(b"data: "):
                found.append(json.loads(line[6:]))
                if len(found) == count:
                    return found
    return found


def test_the_page_and_its_assets_are_served_locally(serve):
    server = serve()
    status, page = fetch(server.url)
    assert status == 200 and "<title>Meter bench: board panel</title>" in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets == ["static/panel.css", "static/panel.js"]  # nothing from another host
    for asset in assets:
        status, text = fetch(server.url + asset)
        assert status == 200 and "http" not in text.replace("http://www.w3.org", "")


def test_events_stream_in_order_from_where_the_page_is(serve, stream):
    server = serve()
    for k in range(6):
        stream.emit("gate", k=k)
    assert [e["seq"] for e in sse(server.url + "events", 6)] == [1, 2, 3, 4, 5, 6]
    assert [e["data"]["k"] for e in sse(server.url + "events?after=4", 2)] == [4, 5]


def test_a_token_is_required_on_every_request_when_set(serve, stream):
    server = serve(token="s3cret")
    bare = server.url.split("?")[0]
    assert fetch(bare)[0] == 403 and fetch(bare + "events")[0] == 403
    assert fetch(bare + "abort", data=b"")[0] == 403
    assert fetch(bare + "?token=wrong")[0] == 403
    assert server.url.endswith("?token=s3cret") and fetch(server.url)[0] == 200
    stream.emit("run", positions=[])
    assert sse(bare + "events?token=s3cret", 1)[0]["kind"] == "run"


def test_only_loopback_goes_without_a_token():
    assert all(map(is_loopback, ["127.0.0.1", "127.5.6.7", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "bench-7.lab"]))  # every interface, or a name


def test_abort_calls_the_runs_abort_and_a_watching_panel_refuses_it(serve):
    aborted = []
    assert fetch(serve(abort=lambda: aborted.append(1)).url + "abort", data=b"") == (200, '{"aborted":true}')
    assert aborted == [1]
    status, body = fetch(serve().url + "abort", data=b"")
    assert status == 409 and "only watches" in body


def test_an_answer_is_validated_and_an_invalid_one_refused_with_its_reason(serve, stream):
    desk = PromptDesk(stream)
    server = serve(prompts=desk)
    got = []
    asking = threading.Thread(target=lambda: got.append(desk.ask(
        "Physical inspection", inspection_form.fields(POSITIONS, TERMINALS),
        lambda f: inspection_form.from_form(POSITIONS, TERMINALS, f))))
    asking.start()
    while not stream.history:
        asking.join(0.01)
    url = server.url + f"prompts/{stream.history[0].data['id']}"
    form = {"operator": "Dana", "torque_1": "abc", "jaws_1": "yes", "seals_1": "S-77", "torque_2": "", "jaws_2": "yes"}
    status, body = fetch(url, data=json.dumps(form).encode())
    assert status == 422
    assert json.loads(body) == {"error": "position 1 SIM16A00001: torque 'abc' is not a number of in-lb"}
    status, body = fetch(url, data=json.dumps({**form, "torque_1": "49.5"}).encode())
    assert status == 200
    assert fetch(url, data=b"[1, 2]")[0] == 400
    asking.join(5)
    assert got[0]["SIM16A00001"].data == {"torque_in_lb": [49.5] * 6, "jaw_tension_ok": True, "seals": ["S-77"],
                                          "technician": "Dana"}


def test_a_page_still_reading_the_stream_does_not_hold_the_server_open(stream):
    """The run ends with the operator's page still open: stopping the panel closes its stream and the
    server's thread ends (it used to wait on the stream until its 5 s join gave up, thread running)."""
    stream.emit("run", positions=[])
    server = PanelServer(stream.after, host="127.0.0.1", port=0).start()
    reader = urllib.request.urlopen(server.url + "events", timeout=10)
    assert reader.readline().startswith(b"id: 1")
    server.stop()
    assert not server.running  # its thread ended, not a join's timeout giving up
    rest = reader.read()  # returns: the stream ended (it would time out after 10 s if it were still open)
    assert rest.startswith(b"data: ") and rest.endswith(b"\n\n") and rest.count(b"data: ") == 1
    reader.close()
