"""A hello-world Click command: the floor that `mount-bucket`'s fast paths are measured against."""

import click


@click.command()
@click.argument("name", required=False, default="world")
@click.option("-q", "--quiet", is_flag=True)
def hello(name: str, quiet: bool) -> None:
    if not quiet:
        click.echo(f"hello {name}")


if __name__ == "__main__":
    hello()
