//! REST gateway (work in progress).
