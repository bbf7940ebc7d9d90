"""The README's quick-start commands are the ones CI runs and the entry points that exist."""

from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci.startswith("python3 -m venv .venv") and "pytest" in ci
    assert f"\n{ci}\n" in (ROOT / "README.md").read_text()


def test_readme_main_job_uses_a_shipped_recipe():
    readme = (ROOT / "README.md").read_text()
    main_job = next(line for line in readme.splitlines() if "accelerate launch -m gdiff.train" in line)
    recipe = main_job.split("gdiff.train")[1].split()[0]
    assert (ROOT / recipe).is_file()
