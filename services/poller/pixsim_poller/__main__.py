from pixsim_runtime.service import run

from .app import create_app
from .settings import PollerSettings


def main() -> None:
    settings = PollerSettings()
    run(create_app(settings), settings)


if __name__ == "__main__":
    main()
