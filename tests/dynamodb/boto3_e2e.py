"""rewind's DynamoDB API driven by the real boto3 (run by tests/dynamodb_boto3.rs).

Usage: boto3_e2e.py MODE ENDPOINT [ARGS]
  main ENDPOINT REDIS_TABLE   tables, items, PITR, restores and every error case
  restart ENDPOINT            after a restart: schemas and items are still there
  auth ENDPOINT KEY SECRET    only requests signed with KEY's SECRET are accepted
  history ENDPOINT REDIS_PORT an item's history through PITR.HISTORY/PITR.GET (redis-py)
Exits 3 if boto3 is missing, 1 on the first failed check; prints ALL OK at the end.
"""

import datetime
import sys
import time

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
except ImportError:
    print("boto3 is not installed: python3 -m pip install boto3")
    sys.exit(3)

PK = "customer"
SK = "order"


def client(endpoint, key="test", secret="secret"):
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def error_of(f):
    try:
        f()
    except ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError("expected an error, the call succeeded")


def expect_error(code, f, what):
    got = error_of(f)
    assert got == code, f"{what}: expected {code}, got {got}"
    print(f"ok  {what}: {code}")


def key_of(item):
    return {PK: item[PK], SK: item[SK]}


def wait_active(c, name, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        t = c.describe_table(TableName=name)["Table"]
        if t["TableStatus"] == "ACTIVE":
            return t
        assert t["TableStatus"] == "CREATING", t["TableStatus"]
        time.sleep(0.1)
    raise AssertionError(f"{name} not ACTIVE after {timeout} s")


def check_table(c, name, expected, keys):
    """Every key ever written: the table holds exactly `expected`."""
    for k in keys:
        got = c.get_item(TableName=name, Key=dict(k), ConsistentRead=True).get("Item")
        want = expected.get(frozen(k))
        assert got == want, f"{name} {k}: got {got}, want {want}"
    count = c.describe_table(TableName=name)["Table"]["ItemCount"]
    assert count == len(expected), f"{name}: ItemCount {count}, want {len(expected)}"


def frozen(k):
    return (k[PK]["S"], k[SK]["N"])


def item(i, version):
    return {
        PK: {"S": f"cust-{i % 4}"},
        SK: {"N": str(i)},
        "version": {"N": str(version)},
        "note": {"S": f"order {i} v{version}"},
        "blob": {"B": bytes([i, version, 0, 255])},
        "paid": {"BOOL": i % 2 == 0},
        "gift": {"NULL": True},
        "lines": {"L": [{"S": "widget"}, {"N": "2.50"}, {"M": {"qty": {"N": "3"}}}]},
        "meta": {"M": {"channel": {"S": "web"}, "tags": {"SS": ["a", "b"]}}},
        "sizes": {"NS": ["1", "2.5"]},
        "blobs": {"BS": [b"\x00", b"\x01\x02"]},
    }


def main(endpoint, redis_table):
    c = client(endpoint)
    schema = [
        {"AttributeName": PK, "KeyType": "HASH"},
        {"AttributeName": SK, "KeyType": "RANGE"},
    ]
    defs = [
        {"AttributeName": PK, "AttributeType": "S"},
        {"AttributeName": SK, "AttributeType": "N"},
    ]
    r = c.create_table(
        TableName="orders", KeySchema=schema, AttributeDefinitions=defs, BillingMode="PAY_PER_REQUEST"
    )
    assert r["TableDescription"]["TableStatus"] == "ACTIVE", r
    assert r["TableDescription"]["TableArn"] == "arn:aws:dynamodb:local:000000000000:table/orders"
    c.get_waiter("table_exists").wait(TableName="orders", WaiterConfig={"Delay": 1})
    desc = c.describe_table(TableName="orders")["Table"]
    assert desc["KeySchema"] == schema and desc["AttributeDefinitions"] == defs, desc
    assert isinstance(desc["CreationDateTime"], datetime.datetime)
    print("ok  create_table + describe_table + table_exists waiter")

    names = c.list_tables()["TableNames"]
    assert "orders" in names and redis_table in names, names
    walked, start = [], None
    while True:
        page = c.list_tables(Limit=1, **({"ExclusiveStartTableName": start} if start else {}))
        walked += page["TableNames"]
        start = page.get("LastEvaluatedTableName")
        if not start:
            break
    assert walked == sorted(names), (walked, names)
    print("ok  list_tables shows the Redis-created table; Limit=1 pages walk every name")

    current = {}
    keys = []
    for i in range(12):
        it = item(i, 1)
        c.put_item(TableName="orders", Item=it)
        current[frozen(key_of(it))] = it
        keys.append(key_of(it))
    check_table(c, "orders", current, keys)
    # Numbers compare by value in keys: 3.0 is order 3.
    got = c.get_item(TableName="orders", Key={PK: {"S": "cust-3"}, SK: {"N": "3.0"}})["Item"]
    assert got == current[("cust-3", "3")], got
    print("ok  put_item/get_item round-trip every attribute type")

    r = c.update_continuous_backups(
        TableName="orders",
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True, "RecoveryPeriodInDays": 7},
    )["ContinuousBackupsDescription"]
    assert r["ContinuousBackupsStatus"] == "ENABLED", r
    d = c.describe_continuous_backups(TableName="orders")["ContinuousBackupsDescription"]
    p = d["PointInTimeRecoveryDescription"]
    assert p["PointInTimeRecoveryStatus"] == "ENABLED" and p["RecoveryPeriodInDays"] == 7, d
    assert p["EarliestRestorableDateTime"] <= p["LatestRestorableDateTime"], p
    print("ok  update_continuous_backups / describe_continuous_backups")

    # Writes after PITR is on, then a restore point on a whole second (boto3 sends whole
    # seconds) that lies after every write so far and before every change below.
    for i in range(12, 16):
        it = item(i, 1)
        c.put_item(TableName="orders", Item=it)
        current[frozen(key_of(it))] = it
        keys.append(key_of(it))
    boundary = int(time.time()) + 1
    time.sleep(boundary - time.time() + 0.2)
    restore_at = datetime.datetime.fromtimestamp(boundary, datetime.timezone.utc)
    before = dict(current)

    for i in range(0, 16, 3):
        it = item(i, 2)
        old = c.put_item(TableName="orders", Item=it, ReturnValues="ALL_OLD")["Attributes"]
        assert old == current[frozen(key_of(it))], old
        current[frozen(key_of(it))] = it
    for i in range(1, 16, 4):
        k = key_of(item(i, 1))
        old = c.delete_item(TableName="orders", Key=k, ReturnValues="ALL_OLD")["Attributes"]
        assert old == current.pop(frozen(k)), old
    for i in range(16, 19):
        it = item(i, 2)
        c.put_item(TableName="orders", Item=it)
        current[frozen(key_of(it))] = it
        keys.append(key_of(it))
    check_table(c, "orders", current, keys)
    print("ok  overwrites, deletes (ReturnValues=ALL_OLD) and new items after the restore point")

    r = c.restore_table_to_point_in_time(
        SourceTableName="orders", TargetTableName="orders_at", RestoreDateTime=restore_at
    )["TableDescription"]
    assert r["TableName"] == "orders_at" and r["TableStatus"] in ("CREATING", "ACTIVE"), r
    assert r["RestoreSummary"]["RestoreDateTime"] == restore_at, r["RestoreSummary"]
    r = c.restore_table_to_point_in_time(
        SourceTableName="orders", TargetTableName="orders_latest", UseLatestRestorableTime=True
    )["TableDescription"]
    for name, want in (("orders_at", before), ("orders_latest", current)):
        t = wait_active(c, name)
        rs = t["RestoreSummary"]
        assert rs["RestoreInProgress"] is False, rs
        assert rs["SourceTableArn"].endswith(":table/orders"), rs
        assert t["KeySchema"] == schema and t["AttributeDefinitions"] == defs, t
        check_table(c, name, want, keys)
    print(f"ok  restore to {restore_at.isoformat()} holds the {len(before)} items of then; "
          f"UseLatestRestorableTime holds the {len(current)} of now")

    expect_error("ResourceNotFoundException", lambda: c.describe_table(TableName="missing"), "describe missing table")
    expect_error(
        "ResourceNotFoundException",
        lambda: c.get_item(TableName="missing", Key={PK: {"S": "x"}, SK: {"N": "1"}}),
        "get_item on a missing table",
    )
    expect_error(
        "ResourceInUseException",
        lambda: c.create_table(TableName="orders", KeySchema=schema, AttributeDefinitions=defs,
                               BillingMode="PAY_PER_REQUEST"),
        "create an existing table",
    )
    expect_error(
        "TableAlreadyExistsException",
        lambda: c.restore_table_to_point_in_time(SourceTableName="orders", TargetTableName="orders_at",
                                                 UseLatestRestorableTime=True),
        "restore onto an existing table",
    )
    expect_error(
        "TableNotFoundException",
        lambda: c.restore_table_to_point_in_time(SourceTableName="missing", TargetTableName="t_new",
                                                 UseLatestRestorableTime=True),
        "restore from a missing table",
    )
    expect_error("TableNotFoundException", lambda: c.describe_continuous_backups(TableName="missing"),
                 "describe_continuous_backups of a missing table")
    c.create_table(TableName="nopitr", KeySchema=schema[:1], AttributeDefinitions=defs[:1],
                   BillingMode="PAY_PER_REQUEST")
    d = c.describe_continuous_backups(TableName="nopitr")["ContinuousBackupsDescription"]
    assert d["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED", d
    expect_error(
        "PointInTimeRecoveryUnavailableException",
        lambda: c.restore_table_to_point_in_time(SourceTableName="nopitr", TargetTableName="t_new",
                                                 UseLatestRestorableTime=True),
        "restore with PITR off",
    )
    for label, when in (
        ("before the window", datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc)),
        ("in the future", datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)),
    ):
        expect_error(
            "InvalidRestoreTimeException",
            lambda: c.restore_table_to_point_in_time(SourceTableName="orders", TargetTableName="t_new",
                                                     RestoreDateTime=when),
            f"restore time {label}",
        )
    expect_error(
        "ValidationException",
        lambda: c.create_table(TableName="badschema", KeySchema=[{"AttributeName": "a", "KeyType": "RANGE"}],
                               AttributeDefinitions=[{"AttributeName": "a", "AttributeType": "S"}],
                               BillingMode="PAY_PER_REQUEST"),
        "a key schema without HASH",
    )
    expect_error(
        "ValidationException",
        lambda: c.put_item(TableName="orders", Item={PK: {"S": "x"}, "note": {"S": "no sort key"}}),
        "put_item without the sort key",
    )
    expect_error(
        "ValidationException",
        lambda: c.get_item(TableName="orders", Key={PK: {"N": "1"}, SK: {"N": "1"}}),
        "get_item with a key of the wrong type",
    )
    expect_error("ValidationException", lambda: c.describe_table(TableName=redis_table),
                 "describe a Redis-created table")
    fresh = {PK: {"S": "conditional"}, SK: {"N": "1"}}
    c.put_item(TableName="orders", Item=fresh, ConditionExpression="attribute_not_exists(customer)")
    expect_error(
        "ConditionalCheckFailedException",
        lambda: c.put_item(TableName="orders", Item=fresh, ConditionExpression="attribute_not_exists(customer)"),
        "put_item whose condition fails",
    )
    c.delete_item(TableName="orders", Key=fresh)
    expect_error("UnknownOperationException",
                 lambda: c.transact_write_items(TransactItems=[{"Put": {"TableName": "orders", "Item": fresh}}]),
                 "transact_write_items (unsupported)")

    r = c.delete_table(TableName="nopitr")["TableDescription"]
    assert r["TableStatus"] == "DELETING", r
    expect_error("ResourceNotFoundException", lambda: c.describe_table(TableName="nopitr"), "describe a deleted table")
    print("ALL OK")


def after_restart(endpoint):
    c = client(endpoint)
    for name in ("orders", "orders_at", "orders_latest"):
        t = c.describe_table(TableName=name)["Table"]
        assert t["TableStatus"] == "ACTIVE" and [k["AttributeName"] for k in t["KeySchema"]] == [PK, SK], t
    got = c.get_item(TableName="orders_at", Key={PK: {"S": "cust-1"}, SK: {"N": "1"}})["Item"]
    assert got == item(1, 1), got
    print("ok  schemas and items survive a restart")
    print("ALL OK")


def auth(endpoint, good, secret):
    assert "TableNames" in client(endpoint, good, secret).list_tables()
    c = client(endpoint, good, secret)
    table = "signed_" + good
    c.create_table(TableName=table, KeySchema=[{"AttributeName": PK, "KeyType": "HASH"}],
                   AttributeDefinitions=[{"AttributeName": PK, "AttributeType": "S"}],
                   BillingMode="PAY_PER_REQUEST")
    c.put_item(TableName=table, Item={PK: {"S": "a"}, "v": {"S": "x" * 5000}})
    assert c.get_item(TableName=table, Key={PK: {"S": "a"}})["Item"]["v"]["S"] == "x" * 5000
    expect_error("UnrecognizedClientException", lambda: client(endpoint, "intruder", secret).list_tables(),
                 "an access key id not in --dynamodb-access-keys")
    expect_error("InvalidSignatureException", lambda: client(endpoint, good, secret + "x").list_tables(),
                 "the right key id with the wrong secret")
    expect_error("InvalidSignatureException",
                 lambda: client(endpoint, good, "wrong").put_item(TableName=table, Item={PK: {"S": "b"}}),
                 "a write signed with the wrong secret")
    assert "Item" not in c.get_item(TableName=table, Key={PK: {"S": "b"}}), "refused write landed"
    print("ALL OK")


def storage_key(pk, sk):
    """The rewind key of a (string, string) DynamoDB key: docs/DYNAMODB.md."""
    p = pk.encode()
    return b"\x01S" + len(p).to_bytes(2, "big") + p + b"S" + sk.encode()


def item_of(value):
    """The item in a stored value: 0xD7 0x01, an 8-byte checksum, then the JSON."""
    import json

    assert value[:2] == b"\xd7\x01", value[:2]
    return json.loads(value[10:])


def history(endpoint, redis_port):
    import redis

    c = client(endpoint)
    r = redis.Redis(port=int(redis_port), protocol=3)
    c.create_table(TableName="songs",
                   KeySchema=[{"AttributeName": "artist", "KeyType": "HASH"},
                              {"AttributeName": "song", "KeyType": "RANGE"}],
                   AttributeDefinitions=[{"AttributeName": "artist", "AttributeType": "S"},
                                         {"AttributeName": "song", "AttributeType": "S"}])
    wait_active(c, "songs")
    c.update_continuous_backups(TableName="songs",
                                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    key = {"artist": {"S": "Nina"}, "song": {"S": "Sinnerman"}}
    times = []
    for v in range(1, 4):
        c.put_item(TableName="songs", Item={**key, "plays": {"N": str(v * 10)}})
        time.sleep(0.01)
        times.append(time.time())
    c.delete_item(TableName="songs", Key=key)
    k = storage_key("Nina", "Sinnerman")
    entries = r.execute_command("PITR.HISTORY", "songs", k)
    ops = [e[2] for e in entries]
    assert ops == [b"del", b"set", b"set", b"set"], ops
    plays = [item_of(e[3])["plays"]["N"] for e in entries[1:]]
    assert plays == ["30", "20", "10"], plays
    at_first = r.execute_command("PITR.GET", "songs", k, "AT", f"{times[0]:.6f}")
    assert item_of(at_first)["plays"] == {"N": "10"}, at_first
    print("ok  PITR.HISTORY and PITR.GET of a DynamoDB item, by its storage key")
    print("ALL OK")


if __name__ == "__main__":
    mode, endpoint = sys.argv[1], sys.argv[2]
    try:
        if mode == "main":
            main(endpoint, sys.argv[3])
        elif mode == "restart":
            after_restart(endpoint)
        elif mode == "auth":
            auth(endpoint, sys.argv[3], sys.argv[4])
        elif mode == "history":
            history(endpoint, sys.argv[3])
        else:
            sys.exit(f"unknown mode {mode}")
    except AssertionError as e:
        import traceback

        traceback.print_exc()
        print(f"FAILED: {e}")
        sys.exit(1)
