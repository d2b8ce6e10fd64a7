#!/usr/bin/env python3
"""A DNS server for tests (stdlib only): answers TXT queries over UDP on loopback from a JSON
file {"<name>": ["<value>", ...]} read at each query. A listed name answers its values (an empty
list: NOERROR without records), any other name NXDOMAIN, any other type no records. Answers are
authoritative and say recursion is available, as a resolver's do, so glibc reads them as such.

Usage: dns-txt.py <records.json> [127.0.0.1 | ::1]; logs {"msg":"dns listening",
"listen":"127.0.0.1:<port>"} (or "[::1]:<port>").
"""
import json
import socket
import struct
import sys

TXT, IN = 16, 1


def read_name(packet, offset):
    labels = []
    while True:
        n = packet[offset]
        offset += 1
        if n == 0:
            return '.'.join(labels).lower(), offset
        if n & 0xC0:
            raise ValueError('compressed names are not expected in a question')
        labels.append(packet[offset:offset + n].decode('ascii'))
        offset += n


def txt_rdata(value):
    data = value.encode()
    chunks = [data[i:i + 255] for i in range(0, len(data), 255)] or [b'']
    return b''.join(bytes([len(c)]) + c for c in chunks)


def answer(packet, records):
    ident, flags, qdcount = struct.unpack('>HHH', packet[:6])
    if qdcount != 1:
        return struct.pack('>HHHHHH', ident, 0x8000 | 0x0400 | 0x0080 | 1, 0, 0, 0, 0)  # FORMERR
    name, end = read_name(packet, 12)
    qtype, qclass = struct.unpack('>HH', packet[end:end + 4])
    question = packet[12:end + 4]
    rd = flags & 0x0100
    values = records.get(name)
    rcode = 3 if values is None else 0  # NXDOMAIN
    rrs = b''
    count = 0
    if values and qtype == TXT and qclass == IN:
        for v in values:
            rdata = txt_rdata(v)
            # The name as a pointer to the question's (offset 12).
            rrs += struct.pack('>HHHIH', 0xC00C, TXT, IN, 60, len(rdata)) + rdata
            count += 1
    head = struct.pack('>HHHHHH', ident, 0x8000 | 0x0400 | rd | 0x0080 | rcode, 1, count, 0, 0)
    return head + question + rrs


def main():
    path = sys.argv[1]
    host = sys.argv[2] if len(sys.argv) > 2 else '127.0.0.1'
    ipv6 = ':' in host
    sock = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    listen = '[%s]:%d' % (host, port) if ipv6 else '%s:%d' % (host, port)
    print(json.dumps({'msg': 'dns listening', 'listen': listen}), flush=True)
    while True:
        packet, peer = sock.recvfrom(4096)
        try:
            with open(path) as f:
                records = {k.lower(): v for k, v in json.load(f).items()}
            sock.sendto(answer(packet, records), peer)
        except (ValueError, IndexError, struct.error, OSError) as e:
            print(json.dumps({'msg': 'dns: query not answered', 'error': str(e)}), flush=True)


if __name__ == '__main__':
    main()
