from pixsim_runtime.service import run

from .app import create_app
from .settings import BillingSettings


def main() -> None:
    settings = BillingSettings()
    run(create_app(settings), settings)


if __name__ == "__main__":
    main()
