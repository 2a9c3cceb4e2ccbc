"""Settings for the node's S3 and Azure stores pointed at the test servers (moto,
Azurite), and making their bucket/container, through an asyncio portal."""

from triopacs.actors import AsyncioPortal
from triopacs.storage.azure_blob import AzureBlobStore, AzureSettings
from triopacs.storage.s3 import S3Settings, S3Store

MIB = 1024 * 1024


def s3_settings(endpoint, **overrides) -> S3Settings:
    kwargs = endpoint.client_kwargs()
    values = dict(
        bucket="archive",
        region=kwargs["region_name"],
        endpoint_url=kwargs["endpoint_url"],
        access_key_id=kwargs["aws_access_key_id"],
        secret_access_key=kwargs["aws_secret_access_key"],
        multipart_threshold=5 * MIB,
        part_size=5 * MIB,
    )
    values.update(overrides)
    return S3Settings(**values)


def azure_settings(endpoint, **overrides) -> AzureSettings:
    values = dict(connection_string=endpoint.connection_string, container="archive", block_upload_threshold=2 * MIB, block_size=1 * MIB)
    values.update(overrides)
    return AzureSettings(**values)


async def create_bucket(portal: AsyncioPortal, settings: S3Settings) -> None:
    async def create():
        async with S3Store.open(settings) as store:
            await store._client.create_bucket(Bucket=settings.bucket)

    await portal.run(create)


async def create_container(portal: AsyncioPortal, settings: AzureSettings) -> None:
    async def create():
        async with AzureBlobStore.open(settings) as store:
            await store._container.create_container()

    await portal.run(create)


async def list_keys(portal: AsyncioPortal, store_class, settings, prefix: str = "") -> list[str]:
    async def listing():
        async with store_class.open(settings) as store:
            keys, cursor = [], None
            while True:
                page, cursor = await store.list(prefix, cursor=cursor)
                keys += [o.key for o in page]
                if cursor is None:
                    return keys

    return await portal.run(listing)
