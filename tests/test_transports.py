"""Transports beyond LF text lines, each against a twin over a real pty or loopback socket: CR
lines and multi-line replies (ZERA MT), and the ANSI C12.18 packet link with its codec.

The codec is pinned to the standard, not to the twin: frames are built by hand from the packet
layout, with the CRC computed here from its catalogue definition, and compared with frames that
real meters put on the line (published traces)."""
from __future__ import annotations

import os
import re
import select
import time
import tty
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import serial

from bench.sim.lines import C1218Responder, ZeraMtLineTwin
from instruments.framing import (
    MAX_PACKET_SIZE,
    FrameError,
    Packet,
    Reassembler,
    crc16,
    decode,
    segment,
)
from instruments.transport import FramedLink, SerialLine, TransportError, VisaLine

AAV_DONE = re.compile(r"AAV(ACK|NAK)")
IDENT_RESPONSE = bytes.fromhex("00 00 01 00 00")  # <ok> <std: C12.18> <ver 1> <rev 0> <end-of-list>


def _reflect(value: int, width: int) -> int:
    return int(f"{value:0{width}b}"[::-1], 2)


def crc_by_definition(data: bytes) -> int:
    """CRC-16/X-25 from its catalogue entry (width 16, poly 0x1021, init 0xFFFF, refin and refout,
    xorout 0xFFFF), computed the textbook way, most significant bit first on bit-reversed octets:
    nothing shared with the module's reflected table."""
    crc = 0xFFFF
    for octet in data:
        crc ^= _reflect(octet, 8) << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return _reflect(crc, 16) ^ 0xFFFF


def hand_frame(control: int, data: bytes, sequence: int = 0) -> bytes:
    """<stp> <identity 00> <ctrl> <seq-nbr> <length, MSB first> <data> <crc, low octet first>."""
    body = bytes((0xEE, 0x00, control, sequence)) + len(data).to_bytes(2, "big") + data
    return body + crc_by_definition(body).to_bytes(2, "little")


def wait_for(condition: Callable[[], bool], timeout_s: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


# ---- the C12.18 packet codec --------------------------------------------------------------------

def test_crc_is_the_catalogued_crc16_x25() -> None:
    assert crc16(b"123456789") == crc_by_definition(b"123456789") == 0x906E  # the catalogue's check value
    for length in (0, 1, 2, 7, 64, 256):
        data = bytes((index * 37 + 11) & 0xFF for index in range(length))
        assert crc16(data) == crc_by_definition(data)


@pytest.mark.parametrize("control, data, on_the_wire", [
    # Identification request; MeteringSDK MCOM/ProtocolC12.h trace "Tx> EE 00 00 00 00 01 20 13 10"
    (0x00, b"\x20", "EE 00 00 00 00 01 20 13 10"),
    # its response from the meter, same trace: "Rx> 06 EE 00 00 00 00 05 00 00 01 00 00 C6 B5"
    (0x00, IDENT_RESPONSE, "EE 00 00 00 00 05 00 00 01 00 00 C6 B5"),
    # Negotiate (toggle bit set on the second packet), same trace: "Tx> EE 00 20 00 00 05 61 04 00 80 06 C2 29"
    (0x20, bytes.fromhex("61 04 00 80 06"), "EE 00 20 00 00 05 61 04 00 80 06 C2 29"),
])
def test_hand_built_frames_match_meter_traces_and_the_codec(control: int, data: bytes, on_the_wire: str) -> None:
    frame = hand_frame(control, data)
    assert frame == bytes.fromhex(on_the_wire)
    packet = Packet(data, toggle=bool(control & 0x20))
    assert packet.encode() == frame
    assert decode(frame) == packet


def test_multi_packet_frames_and_reassembly() -> None:
    """ctrl bit 7 = part of a multi-packet transmission, bit 6 = its first packet; seq-nbr counts
    the packets still to come, 0 on the last."""
    first, last = hand_frame(0xC0, b"\x00\x00", sequence=1), hand_frame(0xA0, b"\x01", sequence=0)
    packets = [decode(first), decode(last)]
    assert [(p.multi, p.first, p.sequence, p.toggle) for p in packets] == [(True, True, 1, False),
                                                                          (True, False, 0, True)]
    joiner = Reassembler(max_packets=2)
    assert joiner.add(packets[0]) is None
    assert joiner.add(packets[1]) == b"\x00\x00\x01"

    payload = bytes(range(200))
    parts = segment(payload, packet_size=64)
    assert [(p.first, p.sequence, len(p.data)) for p in parts] == [(True, 3, 56), (False, 2, 56), (False, 1, 56),
                                                                   (False, 0, 32)]
    joiner = Reassembler(max_packets=4)
    assert [joiner.add(decode(p.encode())) for p in parts][-1] == payload
    with pytest.raises(FrameError, match="transmission of 4 packets exceeds the 3 allowed"):
        Reassembler(max_packets=3).add(parts[0])
    joiner = Reassembler(max_packets=4)
    joiner.add(parts[0])
    with pytest.raises(FrameError, match="packet out of sequence: expected number 2, got 1"):
        joiner.add(parts[2])


def test_every_single_bit_error_is_caught() -> None:
    frame = hand_frame(0x00, IDENT_RESPONSE)
    for bit in range(len(frame) * 8):
        damaged = bytearray(frame)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(FrameError):
            decode(bytes(damaged))


IDENT = bytes.fromhex("EE 00 00 00 00 01 20 13 10")


@pytest.mark.parametrize("frame, complaint", [
    (b"", "truncated packet: 0 octets, a header has 6"),
    (IDENT[:5], "truncated packet: 5 octets"),
    (IDENT[:8], "truncated packet: 8 of 9 octets"),
    (IDENT[:-1] + b"\x11", "CRC mismatch: packet carries 0x1113, its octets give 0x1013"),
    (b"\x00" + IDENT, "no start of packet: 0x00 where <stp> 0xEE belongs"),
    (IDENT + b"\x00", "length field says 1 data octets, frame carries 2"),
    (hand_frame(0x00, b"\x20")[:4] + b"\x00\x02" + b"\x20" + hand_frame(0x00, b"\x20")[-2:], "truncated packet"),
    (hand_frame(0x01, b"\x20"), "reserved control bits set (control octet 0x01)"),
    (hand_frame(0x40, b"\x20"), "first packet outside a multi-packet transmission"),
    (hand_frame(0x00, b"\x20", sequence=2), "a single packet carries sequence number 2"),
    (hand_frame(0x00, bytes(57)), "length field 57 exceeds the packet size (64 octets"),
])
def test_hostile_frames_are_one_line_errors(frame: bytes, complaint: str) -> None:
    with pytest.raises(FrameError) as caught:
        decode(frame, packet_size=64)
    assert complaint in str(caught.value)
    assert "\n" not in str(caught.value)


def test_packet_limits() -> None:
    with pytest.raises(FrameError, match="exceed the largest packet"):
        Packet(bytes(MAX_PACKET_SIZE - 7))
    with pytest.raises(FrameError, match="identity 256 does not fit"):
        Packet(b"", identity=256)
    with pytest.raises(FrameError, match="leaves no room"):
        segment(b"\x20", packet_size=8)


# ---- CR lines and multi-line replies (ZERA MT) ----------------------------------------------------

@pytest.fixture
def mt_pty() -> Iterator[ZeraMtLineTwin]:
    with ZeraMtLineTwin("pty") as twin:
        assert isinstance(twin, ZeraMtLineTwin)
        yield twin


def test_cr_lines_on_a_pty(mt_pty: ZeraMtLineTwin) -> None:
    """The twin splits at CR only: a reply at all proves the transport ended the command with CR."""
    line = SerialLine(mt_pty.address, 1.0, 9600, termination=b"\r")
    try:
        line.write("AAV")
        assert line.read_until(AAV_DONE, max_lines=4) == ["MT793V05.52", "AAVACK"]
        line.write("SFR50.00")
        assert line.read() == "SOKFR"
    finally:
        line.close()
    assert mt_pty.received == ["AAV", "SFR50.00"]
    assert mt_pty.frequency_hz == 50.0


def test_a_reply_cut_short_times_out_naming_what_was_awaited(mt_pty: ZeraMtLineTwin) -> None:
    line = SerialLine(mt_pty.address, 1.0, 9600, termination=b"\r")
    try:
        mt_pty.truncate_next_reply()
        line.write("AAV")
        started = time.monotonic()
        with pytest.raises(TransportError) as caught:
            line.read_until(AAV_DONE, within_s=0.3)
        assert time.monotonic() - started < 0.9
        assert str(caught.value) == ("no line matching 'AAV(ACK|NAK)' within 0.3 s "
                                     "(1 line came back, the last 'MT793V05.52')")
        # the port's own timeout is back: the next exchange works
        line.write("SFR60.00")
        assert line.read() == "SOKFR"
        line.write("AAV")
        with pytest.raises(TransportError, match=r"^no AAV acknowledgement in 1 line \(1 line came back"):
            line.read_until(AAV_DONE, max_lines=1, awaiting="AAV acknowledgement")
    finally:
        line.close()


def test_no_reply_at_all(mt_pty: ZeraMtLineTwin) -> None:
    line = SerialLine(mt_pty.address, 0.2, 9600, termination=b"\r")
    try:
        line.write("XYZ")  # not in the subset: no reply, as in the vendor's mock
        started = time.monotonic()
        with pytest.raises(TransportError, match="no reply before the timeout"):
            line.read()
        with pytest.raises(TransportError, match=r"^no terminal line within 0.2 s \(nothing came back\)$"):
            line.read_until(lambda text: text.endswith("ACK"))
        assert time.monotonic() - started < 1.0
    finally:
        line.close()


def test_cr_lines_over_visa_and_pyserial_sockets() -> None:
    with ZeraMtLineTwin("tcp") as twin:
        visa = VisaLine(twin.visa_address, 1.0, read_termination="\r", write_termination="\r")
        try:
            visa.write("AAV")
            assert visa.read_until(AAV_DONE) == ["MT793V05.52", "AAVACK"]
            twin.truncate_next_reply()
            visa.write("AAV")
            with pytest.raises(TransportError, match=r"no line matching .* within 0.3 s \(1 line came back"):
                visa.read_until(AAV_DONE, within_s=0.3)
            visa.write("SFR50.00")
            assert visa.read() == "SOKFR"
        finally:
            visa.close()
        assert wait_for(lambda: twin.link._conn is None)  # the next client is served
        line = SerialLine(twin.address, 1.0, termination=b"\r")
        try:
            line.write("AAV")
            assert line.read_until(AAV_DONE) == ["MT793V05.52", "AAVACK"]
        finally:
            line.close()
        assert twin.received == ["AAV", "AAV", "SFR50.00", "AAV"]


def test_a_line_transport_needs_a_termination() -> None:
    with pytest.raises(ValueError, match="needs a termination"):
        SerialLine("loop://", 0.1, termination=b"")
    with pytest.raises(ValueError, match="needs a read termination"):
        VisaLine("TCPIP0::127.0.0.1::1::SOCKET", 0.1, read_termination="")


# ---- the C12.18 link against its responder ---------------------------------------------------------

@pytest.fixture
def meter() -> Iterator[C1218Responder]:
    with C1218Responder("pty", ack_timeout_s=0.3) as twin:
        assert isinstance(twin, C1218Responder)
        yield twin


def rx_frames(twin: C1218Responder, event: str = "rx") -> list[bytes]:
    return [octets for name, octets in list(twin.log) if name == event]


def test_identification_on_a_pty(meter: C1218Responder) -> None:
    link = FramedLink(meter.address, 1.0, ack_timeout_s=0.3)
    try:
        assert link.request(b"\x20") == IDENT_RESPONSE
        assert link.request(b"\x20") == IDENT_RESPONSE
    finally:
        link.close()
    assert wait_for(lambda: meter.events().count("ack-in") == 2)
    # the toggle bit flips from one new packet to the next, both ways
    assert rx_frames(meter) == [hand_frame(0x00, b"\x20"), hand_frame(0x20, b"\x20")]
    assert rx_frames(meter, "tx") == [hand_frame(0x00, IDENT_RESPONSE), hand_frame(0x20, IDENT_RESPONSE)]
    assert meter.events() == ["rx", "tx", "ack-in", "rx", "tx", "ack-in"]


def test_a_corrupted_response_is_naked_and_sent_again(meter: C1218Responder) -> None:
    link = FramedLink(meter.address, 1.0, ack_timeout_s=0.3)
    try:
        meter.corrupt_next_crc()
        assert link.request(b"\x20") == IDENT_RESPONSE
    finally:
        link.close()
    assert wait_for(lambda: "ack-in" in meter.events())
    assert meter.events() == ["rx", "tx", "nak-in", "tx", "ack-in"]
    bad, good = rx_frames(meter, "tx")
    assert bad[:-2] == good[:-2] and bad[-2:] != good[-2:]  # same packet, same toggle bit, broken CRC


def test_a_naked_request_is_sent_again_with_the_same_toggle_bit(meter: C1218Responder) -> None:
    link = FramedLink(meter.address, 1.0, ack_timeout_s=0.3)
    try:
        meter.nak_next(2)
        assert link.request(b"\x20") == IDENT_RESPONSE
    finally:
        link.close()
    assert rx_frames(meter, "rx-bad") == [hand_frame(0x00, b"\x20")] * 2
    assert rx_frames(meter) == [hand_frame(0x00, b"\x20")]


def test_retries_are_bounded(meter: C1218Responder) -> None:
    link = FramedLink(meter.address, 1.0, ack_timeout_s=0.3, retries=3)
    try:
        meter.nak_next(10)
        started = time.monotonic()
        with pytest.raises(TransportError) as caught:
            link.request(b"\x20")
        assert time.monotonic() - started < 1.0  # NAKs come at once: no ACK time-out is waited
        assert str(caught.value) == "packet not acknowledged in 4 attempts (4 NAK, 0 unanswered in 0.3 s)"
        meter.nak_next(0)
        meter.corrupt_next_crc(10)
        with pytest.raises(TransportError, match=r"^response packet rejected 4 times in a row \(last: CRC mismatch"):
            link.request(b"\x20")
    finally:
        link.close()


def test_noise_before_the_start_of_packet_is_skipped(meter: C1218Responder) -> None:
    noise = b"\x00\xff\x06" + b"\xee\x13garbage"  # an ACK octet and an EEH that starts no packet among it
    link = FramedLink(meter.address, 1.0, ack_timeout_s=0.3)
    try:
        link.request(b"\x20")
        meter.noise_before_next(noise)
        assert link.request(b"\x20") == IDENT_RESPONSE
        assert link.noise == len(noise)
    finally:
        link.close()


def test_multi_packet_response_and_request() -> None:
    """Both ends at a negotiated packet size of 10 octets: 2 data octets a packet."""
    with C1218Responder("pty", packet_size=10, max_packets=8, ack_timeout_s=0.3) as twin:
        assert isinstance(twin, C1218Responder)
        link = FramedLink(twin.address, 1.0, ack_timeout_s=0.3, packet_size=10, max_packets=3)
        try:
            assert link.request(b"\x20") == IDENT_RESPONSE  # 5 octets: 3 packets
            write = bytes((0x40, 0x00, 0x07, 0x00, 0x01, 0x05))  # 6 octets: 3 packets
            assert link.request(write) == b"\x02"  # <sns>: the twin serves Identification only
        finally:
            link.close()
        assert twin.requests == [b"\x20", write]
        sent = [decode(frame, 10) for frame in rx_frames(twin, "tx")]
        assert [(p.first, p.sequence, p.toggle) for p in sent[:3]] == [(True, 2, False), (False, 1, True),
                                                                      (False, 0, False)]
        received = [decode(frame, 10) for frame in rx_frames(twin)][1:]
        assert [(p.first, p.sequence, p.toggle) for p in received] == [(True, 2, True), (False, 1, False),
                                                                      (False, 0, True)]
        link = FramedLink(twin.address, 1.0, ack_timeout_s=0.3, max_packets=2)
        try:
            with pytest.raises(TransportError, match="bad response: transmission of 3 packets exceeds the 2 allowed"):
                link.request(b"\x20")
        finally:
            link.close()


def test_identification_over_a_socket() -> None:
    """Each client connection is a new session: both start with the toggle bit clear."""
    with C1218Responder("tcp", ack_timeout_s=0.3) as twin:
        assert isinstance(twin, C1218Responder)
        for _ in range(2):
            link = FramedLink(twin.address, 1.0, ack_timeout_s=0.3)
            try:
                assert link.request(b"\x20") == IDENT_RESPONSE
            finally:
                link.close()
        assert twin.requests == [b"\x20", b"\x20"]
        assert "rx-dup" not in twin.events()


def test_a_quiet_line_ends_the_session() -> None:
    """After the channel traffic time-out the device forgets the last toggle bit: a new client on
    the same pty starts again with the toggle bit clear and is served, not taken for a duplicate.
    Before it, the same packet IS a duplicate: ACKed, dropped, not answered."""
    with C1218Responder("pty", ack_timeout_s=0.3, channel_timeout_s=0.2) as twin:
        assert isinstance(twin, C1218Responder)
        for _ in range(2):
            link = FramedLink(twin.address, 1.0, ack_timeout_s=0.3)
            try:
                assert link.request(b"\x20") == IDENT_RESPONSE
            finally:
                link.close()
            time.sleep(0.3)
        twin.channel_timeout_s = 5.0
        link = FramedLink(twin.address, 0.3, ack_timeout_s=0.3)
        try:
            assert link.request(b"\x20\x00") == b"\x01"  # <err>: Identification takes no parameters
        finally:
            link.close()
        link = FramedLink(twin.address, 0.3, ack_timeout_s=0.3)
        try:
            with pytest.raises(TransportError, match=r"^no response packet within 0.3 s$"):
                link.request(b"\x20")
        finally:
            link.close()
        assert twin.requests == [b"\x20", b"\x20", b"\x20\x00"]
        assert twin.events()[-1] == "rx-dup"


@contextmanager
def bare_pty() -> Iterator[tuple[int, str]]:
    """A raw pty with nothing behind it: the test plays the far end on the master."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def read_exactly(fd: int, count: int, timeout_s: float = 1.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout_s
    while len(data) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            break
        data += os.read(fd, count - len(data))
    return data


def test_a_silent_line_is_a_bounded_one_line_error() -> None:
    with bare_pty() as (_, port):
        link = FramedLink(port, 0.5, ack_timeout_s=0.2, retries=1)
        try:
            started = time.monotonic()
            with pytest.raises(TransportError) as caught:
                link.request(b"\x20")
            assert 0.4 <= time.monotonic() - started < 1.0  # two attempts of 0.2 s
        finally:
            link.close()
    assert str(caught.value) == "packet not acknowledged in 2 attempts (0 NAK, 2 unanswered in 0.2 s)"


def test_the_link_drops_duplicates_and_takes_a_response_for_a_lost_ack() -> None:
    """Played by hand on the device side: a retransmitted response (same toggle bit as the one
    accepted) is ACKed and dropped; a response where the ACK was due stands for the lost ACK."""
    first, second = hand_frame(0x00, IDENT_RESPONSE), hand_frame(0x20, b"\x00\x07")
    with bare_pty() as (device, port), ThreadPoolExecutor(1) as pool:
        link = FramedLink(port, 1.0, ack_timeout_s=0.5)
        try:
            answer = pool.submit(link.request, b"\x20")
            assert read_exactly(device, 9) == hand_frame(0x00, b"\x20")
            os.write(device, b"\x06" + first)
            assert read_exactly(device, 1) == b"\x06"
            assert answer.result(1) == IDENT_RESPONSE

            answer = pool.submit(link.request, b"\x20")
            assert read_exactly(device, 9) == hand_frame(0x20, b"\x20")
            os.write(device, b"\x06" + first + second)  # the first response again, then the new one
            assert read_exactly(device, 2) == b"\x06\x06"
            assert answer.result(1) == b"\x00\x07"

            answer = pool.submit(link.request, b"\x20")
            assert read_exactly(device, 9) == hand_frame(0x00, b"\x20")
            os.write(device, hand_frame(0x00, IDENT_RESPONSE))  # no ACK octet before it
            assert read_exactly(device, 1) == b"\x06"
            assert answer.result(1) == IDENT_RESPONSE
        finally:
            link.close()


def test_the_responder_acks_and_drops_a_duplicate_request(meter: C1218Responder) -> None:
    port = serial.serial_for_url(meter.address, timeout=0.3)
    try:
        request = hand_frame(0x00, b"\x20")
        port.write(request)
        assert port.read(1 + 13) == b"\x06" + hand_frame(0x00, IDENT_RESPONSE)
        port.write(b"\x06" + request)  # ACK the response, then the request again as if its ACK was lost
        assert port.read(14) == b"\x06"  # only the ACK: the request is not served twice
    finally:
        port.close()
    assert meter.requests == [b"\x20"]
    assert "rx-dup" in meter.events()
