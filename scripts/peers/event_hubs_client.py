"""Microsoft's own Event Hubs client (PyPI azure-eventhub, installed by
scripts/test-peers) against scripts/peers/event_hubs.py: what it sees is
printed as one JSON object, for the tests to compare with what the service
documents. Each step uses the client as an application would.

    python event_hubs_client.py CONNECTION_STRING WRONG_KEY_CONNECTION_STRING
"""
import datetime
import json
import sys
import threading
import time

from azure.eventhub import EventData, EventHubConsumerClient, EventHubProducerClient


def receive(conn, partition, position, inclusive=False, owner_level=None, want=1, wait=8, started=None, errors=None):
    """Events of `partition` from `position` until `want` came or `wait` seconds passed."""
    consumer = EventHubConsumerClient.from_connection_string(conn, consumer_group="$Default")
    got = []

    def on_event(context, event):
        if event is None:
            return
        got.append({"offset": event.offset, "sequence": event.sequence_number, "key": key(event), "body": event.body_as_str()})
        if len(got) >= want:
            threading.Thread(target=consumer.close).start()

    def on_initialized(context):
        if started is not None:
            started.set()

    def on_error(context, error):
        if errors is not None:
            errors.append(f"{type(error).__name__}: {error}")

    timer = threading.Timer(wait, consumer.close)
    timer.start()
    consumer.receive(
        on_event=on_event,
        partition_id=partition,
        starting_position=position,
        starting_position_inclusive=inclusive,
        owner_level=owner_level,
        on_partition_initialize=on_initialized,
        on_error=on_error,
        max_wait_time=1,
    )
    timer.cancel()
    return got


def key(event):
    k = event.partition_key
    return k.decode() if isinstance(k, bytes) else k


def main():
    conn, wrong = sys.argv[1], sys.argv[2]
    out = {}
    producer = EventHubProducerClient.from_connection_string(conn)
    props = producer.get_eventhub_properties()
    out["hub"] = {"name": props["eventhub_name"], "partitions": props["partition_ids"]}
    batch = producer.create_batch(partition_key="sensor-7")
    for n in range(3):
        batch.add(EventData(json.dumps({"n": n})))
    producer.send_batch(batch)
    out["partitions"] = {p: producer.get_partition_properties(p) for p in props["partition_ids"]}
    for p in out["partitions"].values():
        p["last_enqueued_time_utc"] = p["last_enqueued_time_utc"].timestamp()
    full = next(p for p, v in out["partitions"].items() if not v["is_empty"])
    out["keyed_partition"] = full

    events = receive(conn, full, "-1", want=3)
    out["earliest"] = events
    # Each asks for as many as it should get: one too many shows as the wrong first event.
    out["after_first_offset"] = receive(conn, full, events[0]["offset"], want=2)
    out["from_sequence_1_inclusive"] = receive(conn, full, 1, inclusive=True, want=2)
    out["after_now"] = receive(conn, full, datetime.datetime.now(datetime.timezone.utc), want=1, wait=2)

    # Latest: only what is sent once the receiver is there.
    started, latest = threading.Event(), []
    reader = threading.Thread(
        target=lambda: latest.extend(receive(conn, full, "@latest", want=1, wait=10, started=started))
    )
    reader.start()
    started.wait(10)
    time.sleep(0.5)
    producer.send_batch([EventData(json.dumps({"n": "late"}))], partition_key="sensor-7")
    reader.join()
    out["latest"] = latest

    # Owner levels: a higher one takes the partition from a lower one.
    low_errors, low_started = [], threading.Event()
    low = threading.Thread(
        target=lambda: receive(conn, full, "-1", owner_level=1, want=100, wait=6, started=low_started, errors=low_errors)
    )
    low.start()
    low_started.wait(10)
    time.sleep(0.5)
    out["higher_owner"] = len(receive(conn, full, "-1", owner_level=2, want=4, wait=4))
    low.join()
    out["lower_owner_errors"] = low_errors
    producer.close()

    try:
        bad = EventHubProducerClient.from_connection_string(wrong, retry_total=0)
        bad.get_eventhub_properties()
        out["wrong_key"] = "accepted"
    except Exception as e:  # noqa: BLE001 - the client's own error is what is reported
        out["wrong_key"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
