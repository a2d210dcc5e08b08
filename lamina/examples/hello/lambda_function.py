import json
import os


def lambda_handler(event, context):
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    print(f"saying hello to {name}")
    return {
        "statusCode": 200,
        "body": json.dumps(
            {"message": f"Hello, {name}!", "runtime": os.environ["AWS_EXECUTION_ENV"]}
        ),
    }
