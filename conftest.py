# Repo-root pytest glue only: the bench plugin itself is installed as a pytest11 entry point
# (bench.pytest_plugin), so `pytest test_plans/` works from any directory once the package is installed.
