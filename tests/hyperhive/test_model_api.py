"""The scripted model API's own behaviour that the real-claude tests lean on: the tool results
a request carries, matched to their calls, and a script that leaves its script ending the test
at once (`OffScript`) instead of leaving it to wait for a step that cannot come."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import trio

from hyperhive.testing.model_api import (
    ApiRequest,
    ModelAPI,
    OffScript,
    Reply,
    Text,
    ToolResult,
    open_model_api,
)

CONVERSATION: dict[str, Any] = {
    "model": "claude-scripted",
    "messages": [
        {"role": "user", "content": "commit the change"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me do that."},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "cd x"}},
                {"type": "tool_use", "id": "toolu_2", "name": "mcp__hive__send", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": "Exit code 1\ncd: x: Permission denied",
                    "is_error": True,
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "sent"}],
                },
                {"type": "tool_result", "tool_use_id": "toolu_unknown", "content": "?"},
            ],
        },
    ],
}


async def _post(api: ModelAPI, body: dict[str, Any]) -> bytes:
    """One request, as claude sends it; what came back (b"" when the server only closed)."""
    data = json.dumps(body).encode()
    stream = await trio.open_tcp_stream(api.host, api.port)
    async with stream:
        head = f"POST /v1/messages HTTP/1.1\r\nhost: api\r\ncontent-length: {len(data)}\r\n\r\n"
        await stream.send_all(head.encode() + data)
        answer = bytearray()
        while chunk := await stream.receive_some():
            answer += chunk
        return bytes(answer)


async def test_a_request_pairs_each_tool_result_with_its_call() -> None:
    with trio.fail_after(10):
        async with open_model_api() as api:
            answer = await _post(api, CONVERSATION)
            assert b'"done."' in answer  # the polite default after tool results
            await _post(api, {"messages": [{"role": "user", "content": "hello"}]})
    with_results, plain = api.requests
    assert with_results.tool_results == [
        ToolResult("Bash", {"command": "cd x"}, "Exit code 1\ncd: x: Permission denied", True),
        ToolResult("mcp__hive__send", {}, "sent", False),
        ToolResult("", {}, "?", False),
    ]
    assert plain.tool_results == []


async def _one_request(script: Callable[[ModelAPI], object], body: dict[str, Any]) -> None:
    """Serve `body` with the rules `script` adds; the block waits until something ends it."""
    async with open_model_api() as api:
        script(api)
        assert await _post(api, body) == b""  # no answer: the test is over
        await trio.sleep_forever()


async def test_a_failed_tool_call_ends_the_block_saying_what_failed() -> None:
    def script(api: ModelAPI) -> None:
        api.fail_on_tool_errors().on(lambda request: True, Text("carry on."))

    with trio.fail_after(10), pytest.raises(ExceptionGroup) as caught:
        await _one_request(script, CONVERSATION)
    assert caught.group_contains(OffScript, match="Bash failed: Exit code 1\ncd: x: Permission")


async def test_a_script_that_meets_a_request_it_has_no_step_for_ends_the_block() -> None:
    def reply(request: ApiRequest) -> Reply:
        raise OffScript(f"no step for {request.last_user_text!r}")

    surprise = {"messages": [{"role": "user", "content": "surprise"}]}
    with trio.fail_after(10), pytest.raises(ExceptionGroup) as caught:
        await _one_request(lambda api: api.on(lambda request: True, reply), surprise)
    assert caught.group_contains(OffScript, match="no step for 'surprise'")
