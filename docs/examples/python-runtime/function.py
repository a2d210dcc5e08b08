def handler(event, headers):
    print("deadline", headers["Lambda-Runtime-Deadline-Ms"], flush=True)
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"echo": event, "request_id": headers["Lambda-Runtime-Aws-Request-Id"]}
