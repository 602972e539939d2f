"""What a TransactWriteItems costs on moto as the table grows (README, "Usage at that size").

moto's `transact_write_items` deep-copies the target table once for each item of the
transaction (its rollback snapshot), so a transaction of 100 items costs 100 copies of the whole
table. This starts a plain `moto_server` (as the external checks run it), fills a table with
activity-like items 25 at a time, and times one BatchWriteItem of 25 puts and one
TransactWriteItems of 100 updates at each size.

Usage: .venv/bin/python scripts/moto_transaction_cost.py [port]
"""

import os
import subprocess
import sys
import time

import boto3

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 5077
SIZES = [1_000, 4_000, 10_000]


def main():
    server = os.path.join(os.path.dirname(sys.executable), "moto_server")
    proc = subprocess.Popen([server, "-p", str(PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)
        ddb = boto3.client(
            "dynamodb",
            endpoint_url=f"http://127.0.0.1:{PORT}",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        keys = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
        attrs = [{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk")]
        ddb.create_table(TableName="t", KeySchema=keys, AttributeDefinitions=attrs, BillingMode="PAY_PER_REQUEST")
        stored = 0
        for size in SIZES:
            while stored < size:
                puts = [
                    {"PutRequest": {"Item": {
                        "pk": {"S": f"ACTIVITY#{stored + i}"},
                        "sk": {"S": "DAY#2026-12-01#KIRO_IDE"},
                        "userId": {"S": str(stored + i)},
                        "creditsUsed": {"N": "1"},
                    }}}
                    for i in range(25)
                ]
                ddb.batch_write_item(RequestItems={"t": puts})
                stored += 25
            batch = [{"PutRequest": {"Item": {"pk": {"S": f"X#{size}#{i}"}, "sk": {"S": "X"}}}} for i in range(25)]
            start = time.monotonic()
            ddb.batch_write_item(RequestItems={"t": batch})
            batch_ms = (time.monotonic() - start) * 1000
            updates = [
                {"Update": {
                    "TableName": "t",
                    "Key": {"pk": {"S": f"M#{size}#{i}"}, "sk": {"S": "MONTH#2026-12"}},
                    "UpdateExpression": "SET #d = :v",
                    "ExpressionAttributeNames": {"#d": "DAY#2026-12-01#KIRO_IDE"},
                    "ExpressionAttributeValues": {":v": {"N": "1"}},
                }}
                for i in range(100)
            ]
            start = time.monotonic()
            ddb.transact_write_items(TransactItems=updates)
            tx_ms = (time.monotonic() - start) * 1000
            print(f"table of {stored} items: BatchWriteItem of 25 puts {batch_ms:.0f} ms, "
                  f"TransactWriteItems of 100 updates {tx_ms:.0f} ms", flush=True)
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
