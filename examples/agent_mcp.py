"""An LLM agent that puts the red and the blue block in the bowl, through `embodia mcp`.

The agent is any OpenAI-compatible chat-completions model with tool calling; the robot is the
simulated SO-101 behind `embodia mcp`, spawned here over stdio with the MCP SDK's client, exactly as
an MCP host (Claude Desktop, Cursor, ...) would. The model sees the robot's MCP tools as functions,
and is expected to break the goal into one `do` call per block, checking with `observe` in between.

    export EMBODIA_LLM_BASE_URL=https://api.openai.com/v1     # or a local server: http://127.0.0.1:11434/v1
    export EMBODIA_LLM_API_KEY=sk-...                          # any non-empty string for a local server
    export EMBODIA_LLM_MODEL=gpt-4o-mini
    python examples/agent_mcp.py --checkpoint PATH/TO/POLICY   # a folder from `embodia train`

Options: --goal "...", --max-turns N, --vision (also send camera images to a multimodal model).
Videos of every `do` land in ./embodia_runs/mcp/<time>-session/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.request

ENV_VARS = ("EMBODIA_LLM_BASE_URL", "EMBODIA_LLM_API_KEY", "EMBODIA_LLM_MODEL")
GOAL = "put the red and the blue block in the bowl"
SYSTEM = """You control a robot arm through tools. Reach the user's goal by calling `do` with one short
instruction about one block at a time (e.g. "put the red block in the bowl"); `do` runs a learned
policy and reports whether the simulator judged it a success. Call `observe` to check the scene. If a
`do` fails, you may retry it once. When done, answer with a one-paragraph report of what happened."""


def llm_config() -> dict[str, str]:
    """The endpoint from the environment, or exit with a message that says what to set."""
    missing = [v for v in ENV_VARS if not os.environ.get(v)]
    if missing:
        print(
            f"error: set {', '.join(missing)} to use an OpenAI-compatible chat-completions endpoint, e.g.\n"
            "  export EMBODIA_LLM_BASE_URL=https://api.openai.com/v1\n"
            "  export EMBODIA_LLM_API_KEY=sk-...\n"
            "  export EMBODIA_LLM_MODEL=gpt-4o-mini\n"
            "(a local server such as Ollama or vLLM works too: its /v1 URL and any non-empty key)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return {v: os.environ[v] for v in ENV_VARS}


def chat(cfg: dict[str, str], messages: list[dict], tools: list[dict]) -> dict:
    """One chat-completions request (plain urllib: no SDK needed); returns the assistant message."""
    url = cfg["EMBODIA_LLM_BASE_URL"].rstrip("/") + "/chat/completions"
    body = json.dumps({"model": cfg["EMBODIA_LLM_MODEL"], "messages": messages, "tools": tools}).encode()
    req = urllib.request.Request(
        url,
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {cfg['EMBODIA_LLM_API_KEY']}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            reply = json.load(resp)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:500]
        raise SystemExit(f"error: the LLM endpoint {url} answered HTTP {exc.code}: {detail}") from None
    except urllib.error.URLError as exc:
        raise SystemExit(f"error: cannot reach the LLM endpoint {url}: {exc.reason}") from None
    try:
        return reply["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise SystemExit(f"error: unexpected reply from {url}: {str(reply)[:500]}") from None


def as_function(tool) -> dict:
    """An MCP tool as an OpenAI-style function definition (the JSON schemas carry over as they are)."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description or "",
            "parameters": tool.input_schema,
        },
    }


async def prepare_scene(client, goal_colors=("red", "blue"), tries: int = 20) -> dict:
    """A scene where every block the goal names is on the table (one of the four may be absent)."""
    for seed in range(tries):
        res = await client.call_tool("reset", {"task": "put the red block in the bowl", "seed": seed})
        if not res.is_error and set(goal_colors) <= set(res.structured_content["present_blocks"]):
            return res.structured_content
    raise SystemExit(f"error: no scene with {goal_colors} blocks in {tries} seeds")


async def run(args: argparse.Namespace, cfg: dict[str, str]) -> None:
    from mcp import Client, StdioServerParameters

    server_args = ["-m", "embodia.cli", "mcp"]
    if args.checkpoint:
        server_args += ["--checkpoint", args.checkpoint]
    if args.policy:
        server_args += ["--policy", args.policy]
    params = StdioServerParameters(command=sys.executable, args=server_args)
    async with Client(params, read_timeout_seconds=600) as client:
        tools = (await client.list_tools()).tools
        print(f"MCP tools: {', '.join(t.name for t in tools)}")
        scene = await prepare_scene(client)
        print(f"scene: {scene['summary']}")
        functions = [as_function(t) for t in tools]
        messages: list[dict] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": args.goal}]
        for _ in range(args.max_turns):
            msg = await asyncio.to_thread(chat, cfg, messages, functions)
            messages.append({k: v for k, v in msg.items() if k in ("role", "content", "tool_calls")})
            calls = msg.get("tool_calls") or []
            if not calls:
                print(f"\nagent: {msg.get('content')}")
                return
            images = []
            for call in calls:
                name = call["function"]["name"]
                try:
                    arguments = json.loads(call["function"].get("arguments") or "{}")
                except json.JSONDecodeError:
                    arguments = None
                summary = None
                if not isinstance(arguments, dict):
                    text = "error: the arguments were not a JSON object"
                else:
                    res = await client.call_tool(name, arguments)
                    text = "\n".join(c.text for c in res.content if c.type == "text")
                    images += [c for c in res.content if c.type == "image"]
                    if res.is_error:
                        text = f"error: {text}"
                    elif isinstance(res.structured_content, dict):
                        summary = res.structured_content.get("summary")
                print(f"-> {name}({json.dumps(arguments)}): {summary or text[:200]}")
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": text})
            if images and args.vision:
                # Tool messages carry only text in the chat-completions format; images follow as user content.
                parts = [{"type": "text", "text": "Camera image(s) from the last tool call(s):"}]
                parts += [
                    {"type": "image_url", "image_url": {"url": f"data:{i.mime_type};base64,{i.data}"}}
                    for i in images
                ]
                messages.append({"role": "user", "content": parts})
        print(f"\nstopped after {args.max_turns} turns without a final answer")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--goal", default=GOAL)
    parser.add_argument("--checkpoint", help="policy folder for `embodia mcp` (default: the shipped base)")
    parser.add_argument("--policy", help="or a policy server URL (ws://host:port)")
    parser.add_argument("--max-turns", type=int, default=12)
    parser.add_argument("--vision", action="store_true", help="send camera images to the model too")
    args = parser.parse_args()
    cfg = llm_config()  # before spawning anything: a missing variable is the most common mistake
    asyncio.run(run(args, cfg))


if __name__ == "__main__":
    main()
