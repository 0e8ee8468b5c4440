"""ANSI C12.18 data-link packets: the binary frames of a meter's optical port, strict both ways.

Standard: ANSI C12.18-2006, *Protocol Specification for ANSI Type 2 Optical Port* (NEMA; published
with the same content as IEEE Std 1701-2011). Clause 4 (Protocol Details) gives one clause per layer:
4.1 order of transmission, 4.2 Layer 7 (the PSEM services, among them Identification), 4.7 Layer 2
(data link: the packet, ACK/NAK, the toggle bit, retries, timeouts). The standard is sold, not
published: the sub-clause numbers are not cited here because the text was not at hand to check them,
and every detail below was checked against public implementations and published meter traces
instead: rsmusllp/termineter ``c1218/`` (data.py, connection.py, utilities.py), InGuardians
``c12_18_packet.py``, the EPRI SE-240 client (``SE240CLI.c``, data-link BNF in its header) and
Elster/Honeywell MeteringSDK ``MCOM/ProtocolC12.h`` (a logged Identification and Negotiate exchange).

Layer 2 packet (4.7)::

    <packet> ::= <stp> <identity> <ctrl> <seq-nbr> <length> <data> <crc>
    <stp>      EEH, start of packet
    <identity> one byte, 00H by default (point to point)
    <ctrl>     bit 7: part of a multi-packet transmission; bit 6: first packet of one;
               bit 5: toggle bit, flipped for each new packet and kept on a retransmission, so a
               receiver can tell a retransmitted (duplicate) packet; bits 0..4 reserved, zero here
               (C12.22 uses bits 0..1 as a data-format code: such a packet is refused, not guessed at)
    <seq-nbr>  packets still to come in a multi-packet transmission (0 on the last, 0 on a single)
    <length>   <word16>: number of <data> octets, most significant octet first (4.1)
    <crc>      CRC-16 over <stp> through the last <data> octet: polynomial x^16 + x^12 + x^5 + 1
               (0x1021) processed reflected (0x8408), initial value 0xFFFF, result complemented
               (XOR 0xFFFF): the HDLC frame check sequence, catalogued as CRC-16/X-25 (check value
               0x906E over ASCII "123456789"). Sent low-order octet first, unlike every other
               multi-octet field: so do all four implementations above, and so do the meter traces
               (identification request ``EE 00 00 00 00 01 20 13 10``).

A receiver answers each packet with one octet: ACK 06H if it is good, NAK 15H if its framing or
CRC is bad; the sender retransmits on a NAK (3 retries by default). There is no escaping or byte
stuffing (none of the implementations above escapes anything, and the traces carry raw octets):
EEH may appear inside <data>, so a packet is found by <stp> and <length> and trusted only if its
CRC matches. Packet size, counting header and CRC, is 64 octets until the Negotiate service
(4.2) changes it, to at most 8192.
"""
from __future__ import annotations

from dataclasses import dataclass

STP = 0xEE
ACK = 0x06
NAK = 0x15

CTRL_MULTI = 0x80
CTRL_FIRST = 0x40
CTRL_TOGGLE = 0x20
CTRL_RESERVED = 0x1F

HEADER_SIZE = 6  # <stp> <identity> <ctrl> <seq-nbr> <length>
CRC_SIZE = 2
OVERHEAD = HEADER_SIZE + CRC_SIZE
DEFAULT_PACKET_SIZE = 64
MAX_PACKET_SIZE = 8192


class FrameError(ValueError):
    """A packet that is not a well-formed C12.18 packet: the message is one line saying why."""


def _crc_table() -> tuple[int, ...]:
    table = []
    for octet in range(256):
        crc = octet
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """The packet CRC (CRC-16/X-25, see the module docstring) of ``data``."""
    crc = 0xFFFF
    for octet in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ octet) & 0xFF]
    return crc ^ 0xFFFF


@dataclass(frozen=True)
class Packet:
    """One C12.18 packet; ``encode()`` gives its octets, ``decode()`` reads them back."""

    data: bytes
    identity: int = 0
    toggle: bool = False
    multi: bool = False
    first: bool = False
    sequence: int = 0

    def __post_init__(self) -> None:
        for field, value in (("identity", self.identity), ("sequence", self.sequence)):
            if not 0 <= value <= 0xFF:
                raise FrameError(f"{field} {value} does not fit in one octet")
        if len(self.data) > MAX_PACKET_SIZE - OVERHEAD:
            raise FrameError(f"{len(self.data)} data octets exceed the largest packet ({MAX_PACKET_SIZE} octets)")
        if self.first and not self.multi:
            raise FrameError("control octet marks a first packet outside a multi-packet transmission")
        if not self.multi and self.sequence:
            raise FrameError(f"a single packet carries sequence number {self.sequence} (must be 0)")

    @property
    def control(self) -> int:
        return (CTRL_MULTI if self.multi else 0) | (CTRL_FIRST if self.first else 0) | (
            CTRL_TOGGLE if self.toggle else 0)

    def encode(self) -> bytes:
        head = bytes((STP, self.identity, self.control, self.sequence)) + len(self.data).to_bytes(2, "big")
        body = head + self.data
        return body + crc16(body).to_bytes(2, "little")


def frame_size(header: bytes, packet_size: int = MAX_PACKET_SIZE) -> int:
    """Total octets of the packet whose first HEADER_SIZE octets are ``header``, or FrameError if
    the header cannot start a packet (no <stp>, reserved control bits, longer than ``packet_size``)."""
    if len(header) < HEADER_SIZE:
        raise FrameError(f"truncated packet: {len(header)} octets, a header has {HEADER_SIZE}")
    if header[0] != STP:
        raise FrameError(f"no start of packet: 0x{header[0]:02X} where <stp> 0xEE belongs")
    if header[2] & CTRL_RESERVED:
        raise FrameError(f"reserved control bits set (control octet 0x{header[2]:02X})")
    length = int.from_bytes(header[4:6], "big")
    if length + OVERHEAD > packet_size:
        raise FrameError(f"length field {length} exceeds the packet size ({packet_size} octets with header and CRC)")
    return length + OVERHEAD


def decode(frame: bytes, packet_size: int = MAX_PACKET_SIZE) -> Packet:
    """The packet that is exactly ``frame``; FrameError (one line) for anything else."""
    expected = frame_size(frame[:HEADER_SIZE], packet_size)
    if len(frame) < expected:
        raise FrameError(f"truncated packet: {len(frame)} of {expected} octets")
    if len(frame) > expected:
        raise FrameError(f"length field says {expected - OVERHEAD} data octets, frame carries {len(frame) - OVERHEAD}")
    carried = int.from_bytes(frame[-CRC_SIZE:], "little")
    computed = crc16(frame[:-CRC_SIZE])
    if carried != computed:
        raise FrameError(f"CRC mismatch: packet carries 0x{carried:04X}, its octets give 0x{computed:04X}")
    control = frame[2]
    return Packet(data=bytes(frame[HEADER_SIZE:-CRC_SIZE]), identity=frame[1], toggle=bool(control & CTRL_TOGGLE),
                  multi=bool(control & CTRL_MULTI), first=bool(control & CTRL_FIRST), sequence=frame[3])


def segment(payload: bytes, packet_size: int = DEFAULT_PACKET_SIZE, identity: int = 0) -> list[Packet]:
    """``payload`` as the packets of one transmission (toggle bits still clear: the link sets them)."""
    room = packet_size - OVERHEAD
    if room < 1:
        raise FrameError(f"packet size {packet_size} leaves no room for data")
    if len(payload) <= room:
        return [Packet(payload, identity)]
    chunks = [payload[start:start + room] for start in range(0, len(payload), room)]
    if len(chunks) > 0x100:
        raise FrameError(f"{len(payload)} octets need {len(chunks)} packets; a transmission holds at most 256")
    last = len(chunks) - 1
    return [Packet(chunk, identity, multi=True, first=index == 0, sequence=last - index)
            for index, chunk in enumerate(chunks)]


class Reassembler:
    """Joins the packets of one transmission, checking the multi-packet bits and sequence numbers."""

    def __init__(self, max_packets: int = 1) -> None:
        self.max_packets = max_packets
        self._parts: list[bytes] = []
        self._next: int | None = None  # sequence number the next packet must carry

    def add(self, packet: Packet) -> bytes | None:
        """The whole payload once ``packet`` completes it, else None; FrameError if out of order."""
        if self._next is None:
            if not packet.multi:
                return packet.data
            if not packet.first:
                raise FrameError(f"multi-packet transmission starts without its first packet "
                                 f"(sequence {packet.sequence})")
            if packet.sequence + 1 > self.max_packets:
                raise FrameError(f"transmission of {packet.sequence + 1} packets exceeds the "
                                 f"{self.max_packets} allowed")
        elif not packet.multi or packet.first or packet.sequence != self._next:
            expected, self._parts, self._next = self._next, [], None
            raise FrameError(f"packet out of sequence: expected number {expected}, got {packet.sequence}"
                             f"{' (a new transmission)' if packet.first or not packet.multi else ''}")
        self._parts.append(packet.data)
        if packet.sequence == 0:
            payload, self._parts, self._next = b"".join(self._parts), [], None
            return payload
        self._next = packet.sequence - 1
        return None
