"""Schemathesis logs in as the fuzzing user (FUZZ_BASE_URL, FUZZ_USERNAME, FUZZ_PASSWORD),
and again whenever a request comes back 401: a fuzzed logout_all ends every token."""

import os

import httpx
import schemathesis


@schemathesis.auth(refresh_interval=600)
class FuzzUser:
    def get(self, case, context) -> str:
        response = httpx.post(
            f"{os.environ['FUZZ_BASE_URL']}/v1/auth/token",
            data={"username": os.environ["FUZZ_USERNAME"], "password": os.environ["FUZZ_PASSWORD"]},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def set(self, case, data: str, context) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
