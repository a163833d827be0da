"""An Azure Event Hubs namespace for the tests: one event hub with a few
partitions, spoken to over AMQP 1.0 the way the service is, on
python-qpid-proton's protocol engine (installed by scripts/test-peers).

What it serves, as Event Hubs does:
- SASL PLAIN with the policy's name and key (what a development-emulator
  connection string gives), or SASL ANONYMOUS followed by a Shared Access
  Signature put on the claims-based-security node `$cbs` (checked: the
  policy's name, the HMAC-SHA256 under its key, not expired);
- `$management` READ of `com.microsoft:eventhub` (name, created_at,
  partition_count, partition_ids) and `com.microsoft:partition` (sequence
  numbers, last offset, last enqueued time, is_partition_empty);
- sending to `HUB` (a partition chosen by `x-opt-partition-key`, or in turn)
  or to `HUB/Partitions/P`, single messages or batches (message format
  0x80013700, each data section one message);
- receiving from `HUB/ConsumerGroups/GROUP/Partitions/P`: every event from
  the position the `apache.org:selector-filter:string` filter names
  (`amqp.annotation.x-opt-offset > '-1'`, `> '@latest'`, `>= 'OFFSET'`,
  `x-opt-sequence-number`, `x-opt-enqueued-time` in ms), annotated with
  `x-opt-offset`, `x-opt-sequence-number`, `x-opt-enqueued-time` and
  `x-opt-partition-key`; then the new ones as they arrive. An owner level
  (`com.microsoft:epoch`) takes the partition from lower ones (their link
  is detached with `amqp:link:stolen`) and a lower one is refused.

Events are kept in DIR, so a stopped and restarted namespace still holds
them. Proton leaves out a performative's trailing empty fields, as AMQP
allows; the service sends every field and the official client relies on
that, so every frame this peer writes is given all its fields.

    python event_hubs.py --port 5672 --dir /tmp/hub --hub readings \
        --key-name send --key KEY [--partitions 2] [--group $Default ...]
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import struct
import time
import urllib.parse
import uuid

from proton import (
    UNDESCRIBED,
    Array,
    Collector,
    Condition,
    Connection,
    Data,
    Delivery,
    Described,
    Endpoint,
    Event,
    Message,
    Transport,
    symbol,
    timestamp,
    ubyte,
    ulong,
)

SASL_HEADER = b"AMQP\x03\x01\x00\x00"
AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
SELECTOR = symbol("apache.org:selector-filter:string")
EPOCH = symbol("com.microsoft:epoch")
KEY = symbol("x-opt-partition-key")
# How many fields each performative has (AMQP 1.0, part 2.7), by descriptor code.
FIELDS = {0x10: 10, 0x11: 8, 0x12: 14, 0x13: 11, 0x14: 11, 0x15: 6, 0x16: 3, 0x17: 1, 0x18: 1}


def whole(body):
    """`body` (a performative, then a transfer's payload) with every field
    of the performative present: the trailing ones proton left out as nulls."""
    if len(body) < 4 or body[0] != 0x00 or body[1] != 0x53 or body[2] not in FIELDS:
        return body
    code, ctor, at = body[2], body[3], 4
    if ctor == 0x45:
        size, count, items = 0, 0, b""
    elif ctor == 0xC0:
        size, count = body[at], body[at + 1]
        items = body[at + 2 : at + 1 + size]
        at += 1 + size
    elif ctor == 0xD0:
        size, count = struct.unpack(">II", body[at : at + 8])
        items = body[at + 8 : at + 4 + size]
        at += 4 + size
    else:
        return body
    if ctor == 0x45:
        at = 4
    missing = FIELDS[code] - count
    if missing <= 0:
        return body
    items += b"\x40" * missing
    return body[:3] + b"\xd0" + struct.pack(">II", len(items) + 4, FIELDS[code]) + items + body[at:]


def frame(kind, body):
    return struct.pack(">IBBH", 8 + len(body), 2, kind, 0) + body


def encode(value):
    d = Data()
    d.put_object(value)
    return d.encode()


def decode(body):
    """The first value in `body`, its binaries copied out of the decoder
    (proton hands them out as views into its buffer, freed with it)."""
    d = Data()
    d.decode(body)
    d.rewind()
    d.next()
    return owned(d.get_object())


def owned(value):
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, Described):
        return Described(value.descriptor, owned(value.value))
    if isinstance(value, list):
        return [owned(v) for v in value]
    if isinstance(value, dict):
        return {owned(k): owned(v) for k, v in value.items()}
    return value


class Partition:
    def __init__(self, directory, pid):
        self.id = pid
        self.path = os.path.join(directory, f"partition-{pid}.jsonl")
        self.events = []
        self.receivers = []  # (epoch or None, link, group, the Peer holding it)
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.events = [json.loads(line) for line in f if line.strip()]

    def next_offset(self):
        if not self.events:
            return 0
        last = self.events[-1]
        return int(last["offset"]) + len(base64.b64decode(last["body"])) + 64

    def append(self, sent):
        event = {
            "offset": str(self.next_offset()),
            "sequence": len(self.events),
            "enqueued": int(time.time() * 1000),
            "key": sent["key"],
            "body": base64.b64encode(sent["body"]).decode(),
            "properties": sent["properties"],
            "id": sent["id"],
        }
        self.events.append(event)
        with open(self.path, "a") as f:
            f.write(json.dumps(event) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return event

    def start(self, selector):
        """The index of the first event a receiver with this selector gets."""
        if selector is None:
            return 0
        m = re.fullmatch(
            r"\s*amqp\.annotation\.(x-opt-offset|x-opt-sequence-number|x-opt-enqueued-time)\s*(>=|>)\s*'([^']*)'\s*",
            selector,
        )
        if not m:
            raise ValueError(f"the selector `{selector}` is not one Event Hubs takes")
        field, op, value = m.groups()
        if field == "x-opt-offset" and value == "@latest":
            return len(self.events)
        key = {"x-opt-offset": "offset", "x-opt-sequence-number": "sequence", "x-opt-enqueued-time": "enqueued"}[field]
        bound = int(value)
        for i, e in enumerate(self.events):
            have = int(e[key])
            if have > bound or (op == ">=" and have == bound):
                return i
        return len(self.events)


class Namespace:
    def __init__(self, args):
        os.makedirs(args.dir, exist_ok=True)
        self.hub = args.hub
        self.key_name, self.key = args.key_name, args.key
        self.groups = {"$Default", *args.group}
        self.partitions = {str(p): Partition(args.dir, str(p)) for p in range(args.partitions)}
        self.turn = 0
        self.created = int(os.stat(args.dir).st_mtime * 1000)
        self.sessions = set()

    def place(self, key):
        if key is None:
            self.turn += 1
            return str(self.turn % len(self.partitions))
        digest = hashlib.sha256(key.encode()).digest()
        return str(int.from_bytes(digest[:4], "big") % len(self.partitions))

    def token_ok(self, token):
        """Whether `token` is a SAS token of this namespace's policy, signed with its key and unexpired."""
        try:
            kind, fields = token.split(" ", 1)
            parts = dict(p.split("=", 1) for p in fields.split("&"))
            expiry = int(parts["se"])
            signed = f"{parts['sr']}\n{expiry}".encode()
            mac = hmac.new(self.key.encode(), signed, hashlib.sha256).digest()
            good = urllib.parse.quote(base64.b64encode(mac).decode(), safe="")
        except (ValueError, KeyError):
            return False
        return (
            kind == "SharedAccessSignature"
            and parts.get("skn") == self.key_name
            and hmac.compare_digest(urllib.parse.unquote(parts["sig"]), urllib.parse.unquote(good))
            and expiry > time.time()
        )


def address_path(address):
    """`HUB/...` from `amqps://host/HUB/...` or `HUB/...`."""
    if address and "://" in address:
        address = urllib.parse.urlparse(address).path
    return (address or "").strip("/")


class Peer:
    """One client connection: SASL here, the rest in proton's engine."""

    def __init__(self, ns, reader, writer):
        self.ns, self.reader, self.writer = ns, reader, writer
        self.authorized = False
        self.connection = Connection()
        self.collector = Collector()
        self.connection.collect(self.collector)
        self.transport = Transport(Transport.SERVER)
        self.transport.bind(self.connection)
        self.out = b""
        self.sent_header = False
        self.senders = []  # our sending links to partitions: (link, partition, next index)
        self.replies = {}  # address of a management or cbs reply link -> link

    async def sasl(self):
        header = await self.reader.readexactly(8)
        if header == AMQP_HEADER:
            return header
        if header != SASL_HEADER:
            raise ConnectionError("not AMQP")
        mechanisms = Described(ulong(0x40), [Array(UNDESCRIBED, Data.SYMBOL, *map(symbol, ["PLAIN", "ANONYMOUS", "MSSBCBS"]))])
        self.writer.write(SASL_HEADER + frame(1, encode(mechanisms)))
        size, doff = struct.unpack(">IB", await self.reader.readexactly(5))
        rest = await self.reader.readexactly(size - 5)
        init = decode(rest[doff * 4 - 5 :])
        mechanism, response = str(init.value[0]), init.value[1] if len(init.value) > 1 else None
        ok = mechanism in ("ANONYMOUS", "MSSBCBS")
        if mechanism == "PLAIN" and response is not None:
            _, user, password = bytes(response).split(b"\x00", 2)
            ok = user.decode() == self.ns.key_name and password.decode() == self.ns.key
            self.authorized = ok
        outcome = Described(ulong(0x44), [ubyte(0 if ok else 1), None])
        self.writer.write(frame(1, encode(outcome)))
        await self.writer.drain()
        if not ok:
            raise ConnectionError("authentication failed")
        return await self.reader.readexactly(8)

    async def run(self):
        try:
            first = await self.sasl()
        except (ConnectionError, asyncio.IncompleteReadError):
            self.writer.close()
            return
        self.ns.sessions.add(self)
        self.transport.push(first)
        self.pump()
        try:
            while not self.transport.closed:
                try:
                    data = await asyncio.wait_for(self.reader.read(65536), 1.0)
                except asyncio.TimeoutError:
                    data = None
                if data == b"":
                    self.transport.close_tail()
                elif data:
                    try:
                        self.transport.push(data)
                    except Exception:  # the engine has closed its input: the connection is ending
                        self.transport.close_tail()
                self.transport.tick(time.time())
                self.pump()
                await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.ns.sessions.discard(self)
            for p in self.ns.partitions.values():
                p.receivers = [r for r in p.receivers if r[1].connection is not self.connection]
            self.writer.close()

    def events(self):
        while (event := self.collector.peek()) is not None:
            self.handle(event)
            self.collector.pop()

    def pump(self):
        """Handles what the engine saw, sends what consumers have credit
        for, and writes out the frames the engine made, whole."""
        self.events()
        self.deliver()
        self.events()
        pending = self.transport.pending()
        if pending > 0:
            self.out += self.transport.peek(pending)
            self.transport.pop(pending)
        if not self.sent_header and len(self.out) >= 8:
            self.writer.write(self.out[:8])
            self.out, self.sent_header = self.out[8:], True
        while len(self.out) >= 8:
            size, doff, kind = struct.unpack(">IBB", self.out[:6])
            if len(self.out) < size:
                break
            head, body = self.out[: doff * 4], self.out[doff * 4 : size]
            body = whole(body)
            self.writer.write(struct.pack(">I", doff * 4 + len(body)) + head[4:] + body)
            self.out = self.out[size:]
        if pending < 0 and not self.out:
            self.writer.close()

    def handle(self, event):
        t = event.type
        if t == Event.CONNECTION_REMOTE_OPEN:
            self.connection.container = "switchyard-test-event-hubs"
            self.connection.open()
        elif t == Event.SESSION_REMOTE_OPEN:
            event.session.open()
        elif t == Event.LINK_REMOTE_OPEN:
            self.attach(event.link)
        elif t == Event.LINK_REMOTE_CLOSE:
            self.detach(event.link)
        elif t == Event.SESSION_REMOTE_CLOSE:
            event.session.close()
        elif t == Event.CONNECTION_REMOTE_CLOSE:
            self.connection.close()
        elif t == Event.DELIVERY:
            self.delivery(event.delivery)

    def refuse(self, link, condition, description):
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        link.open()
        link.condition = Condition(condition, description)
        link.close()

    def attach(self, link):
        if link.state & Endpoint.LOCAL_ACTIVE:
            return
        if link.is_receiver:  # the client sends
            target = address_path(link.remote_target.address)
            link.target.copy(link.remote_target)
            link.source.copy(link.remote_source)
            if target not in ("$cbs", "$management") and not self.authorized:
                return self.refuse(link, "amqp:unauthorized-access", "put a token on $cbs first")
            if target not in ("$cbs", "$management") and not re.fullmatch(
                rf"{re.escape(self.ns.hub)}(/Partitions/[^/]+)?", target
            ):
                return self.refuse(link, "amqp:not-found", f"no entity `{target}` in this namespace")
            link.open()
            link.flow(100)
            return
        source = address_path(link.remote_source.address)
        if source in ("$cbs", "$management"):
            link.source.copy(link.remote_source)
            link.target.copy(link.remote_target)
            self.replies[(source, link.remote_target.address)] = link
            link.open()
            return
        m = re.fullmatch(r"([^/]+)/ConsumerGroups/([^/]+)/Partitions/([^/]+)", source)
        if not self.authorized:
            return self.refuse(link, "amqp:unauthorized-access", "put a token on $cbs first")
        if not m or m.group(1) != self.ns.hub:
            return self.refuse(link, "amqp:not-found", f"no entity `{source}` in this namespace")
        group, pid = m.group(2), m.group(3)
        if group not in self.ns.groups:
            return self.refuse(link, "amqp:not-found", f"The messaging entity '{self.ns.hub}/ConsumerGroups/{group}' could not be found")
        partition = self.ns.partitions.get(pid)
        if partition is None:
            return self.refuse(link, "amqp:not-found", f"no partition `{pid}` (there are {len(self.ns.partitions)})")
        selector = None
        filters = link.remote_source.filter
        filters.rewind()
        if filters.next():
            found = filters.get_object() or {}
            described = found.get(SELECTOR)
            if described is not None:
                selector = described.value if isinstance(described, Described) else described
        epoch = (link.remote_properties or {}).get(EPOCH)
        holders = [r for r in partition.receivers if r[2] == group]
        highest = max((r[0] for r in holders if r[0] is not None), default=None)
        if highest is not None and (epoch is None or epoch < highest):
            return self.refuse(
                link,
                "com.microsoft:receiver-disconnected",
                f"a receiver with owner level {highest} holds partition {pid} of {group}",
            )
        try:
            start = partition.start(selector)
        except ValueError as e:
            return self.refuse(link, "amqp:invalid-field", str(e))
        if epoch is not None:
            for held in holders:
                if held[0] is None or held[0] < epoch:
                    held[1].condition = Condition(
                        "amqp:link:stolen", f"a receiver with owner level {epoch} took partition {pid}"
                    )
                    held[1].close()
                    partition.receivers.remove(held)
                    held[3].flush_soon()
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        if epoch is not None:
            link.properties = {EPOCH: epoch}
        link.open()
        partition.receivers.append((epoch, link, group, self))
        self.senders.append([link, partition, start])

    def detach(self, link):
        for p in self.ns.partitions.values():
            p.receivers = [r for r in p.receivers if r[1] is not link]
        self.senders = [s for s in self.senders if s[0] is not link]
        self.replies = {k: v for k, v in self.replies.items() if v is not link}
        if not link.state & Endpoint.LOCAL_CLOSED:
            link.close()

    def deliver(self):
        for entry in self.senders:
            link, partition, index = entry
            if not link.state & Endpoint.LOCAL_ACTIVE or link.state & Endpoint.LOCAL_CLOSED:
                continue
            while link.credit > 0 and index < len(partition.events):
                e = partition.events[index]
                message = Message(body=base64.b64decode(e["body"]), inferred=True)
                message.annotations = {
                    symbol("x-opt-offset"): e["offset"],
                    symbol("x-opt-sequence-number"): e["sequence"],
                    symbol("x-opt-enqueued-time"): timestamp(e["enqueued"]),
                }
                if e["key"] is not None:
                    message.annotations[KEY] = e["key"]
                if e["properties"]:
                    message.properties = e["properties"]
                if e["id"] is not None:
                    message.id = e["id"]
                delivery = link.delivery(str(uuid.uuid4()).encode())
                link.send(message.encode())
                link.advance()
                delivery.settle()
                index += 1
            entry[2] = index

    def delivery(self, delivery):
        link = delivery.link
        if link.is_sender:
            if delivery.remote_state or delivery.settled:
                delivery.settle()
            return
        if not delivery.readable or delivery.partial:
            return
        raw = link.recv(delivery.pending)
        link.advance()
        target = address_path(link.target.address)
        if target in ("$cbs", "$management"):
            self.request(target, raw)
            delivery.update(Delivery.ACCEPTED)
        else:
            try:
                self.publish(target, raw)
                delivery.update(Delivery.ACCEPTED)
            except ValueError as e:
                delivery.local.condition = Condition("amqp:invalid-field", str(e))
                delivery.update(Delivery.REJECTED)
        delivery.settle()
        link.flow(1)

    def publish(self, target, raw):
        forced = target.split("/Partitions/")[1] if "/Partitions/" in target else None
        if forced is not None and forced not in self.ns.partitions:
            raise ValueError(f"no partition `{forced}`")
        for event in unbatch(raw):
            pid = forced if forced is not None else self.ns.place(event["key"])
            self.ns.partitions[pid].append(event)
        for peer in list(self.ns.sessions):
            peer.flush_soon()

    def flush_soon(self):
        asyncio.get_running_loop().call_soon(self.pump)

    def request(self, node, raw):
        request = Message()
        request.decode(raw)
        props = request.properties or {}
        operation = props.get("operation")
        status, description, body = 200, "OK", None
        if node == "$cbs":
            if operation != "put-token":
                status, description = 400, f"unknown operation `{operation}`"
            elif not self.ns.token_ok(str(request.body)):
                status, description = 401, "InvalidSignature: the token's signature, name or expiry is wrong"
            else:
                self.authorized = True
        else:
            kind = props.get("type")
            if not (self.authorized or self.ns.token_ok(str(props.get("security_token", "")))):
                status, description = 401, "unauthorized"
            elif operation != "READ":
                status, description = 400, f"unknown operation `{operation}`"
            elif props.get("name") != self.ns.hub:
                status, description = 404, f"no event hub `{props.get('name')}`"
            elif kind == "com.microsoft:eventhub":
                ids = list(self.ns.partitions)
                body = {
                    "name": self.ns.hub,
                    "type": "com.microsoft:eventhub",
                    "created_at": timestamp(self.ns.created),
                    "partition_count": len(ids),
                    "partition_ids": Array(UNDESCRIBED, Data.STRING, *ids),
                }
            elif kind == "com.microsoft:partition":
                p = self.ns.partitions.get(str(props.get("partition")))
                if p is None:
                    status, description = 404, f"no partition `{props.get('partition')}`"
                else:
                    last = p.events[-1] if p.events else None
                    body = {
                        "name": self.ns.hub,
                        "type": "com.microsoft:partition",
                        "partition": p.id,
                        "begin_sequence_number": 0,
                        "last_enqueued_sequence_number": last["sequence"] if last else -1,
                        "last_enqueued_offset": last["offset"] if last else "-1",
                        "last_enqueued_time_utc": timestamp(last["enqueued"] if last else 0),
                        "is_partition_empty": last is None,
                    }
            else:
                status, description = 400, f"unknown type `{kind}`"
        reply = Message(body=body)
        reply.correlation_id = request.id
        reply.properties = {"status-code": status, "status-description": description}
        # The reply link the request names, or the one link from that node.
        link = self.replies.get((node, request.reply_to)) or next(
            (l for (n, _), l in self.replies.items() if n == node), None
        )
        if link is None:
            return
        delivery = link.delivery(str(uuid.uuid4()).encode())
        link.send(reply.encode())
        link.advance()
        delivery.settle()


def unbatch(raw):
    """The messages in a transfer, each with its partition key: the one
    message, or each data section of a batch (the batch's key unless the
    message has its own)."""
    sections, datas, at = [], [], 0
    while at < len(raw):
        d = Data()
        at += d.decode(raw[at:])
        d.rewind()
        d.next()
        section = owned(d.get_object())
        sections.append(section)
        if isinstance(section, Described) and section.descriptor == 0x75:
            datas.append(section.value)
    outer = Message()
    if datas and all(len(x) > 3 and x[:2] == b"\x00\x53" and 0x70 <= x[2] <= 0x78 for x in datas):
        key = None
        for s in sections:
            if isinstance(s, Described) and s.descriptor == 0x72:
                key = (s.value or {}).get(KEY)
        messages = []
        for x in datas:
            m = Message()
            m.decode(x)
            messages.append(event_of(m, key))
        return messages
    outer.decode(raw)
    return [event_of(outer, None)]


def event_of(message, key):
    """What the hub keeps of a message sent to it: its body (bytes), partition key, properties and id."""
    body = message.body
    if isinstance(body, memoryview):
        body = bytes(body)
    elif isinstance(body, str):
        body = body.encode()
    elif not isinstance(body, bytes):
        body = json.dumps(body).encode()
    props = {str(k): v if isinstance(v, (str, int, float, bool)) else str(v) for k, v in (message.properties or {}).items()}
    return {
        "body": body,
        "key": (message.annotations or {}).get(KEY, key),
        "properties": props,
        "id": str(message.id) if message.id is not None else None,
    }


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--hub", required=True)
    parser.add_argument("--key-name", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--group", action="append", default=[])
    args = parser.parse_args()
    ns = Namespace(args)
    server = await asyncio.start_server(lambda r, w: Peer(ns, r, w).run(), "127.0.0.1", args.port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
