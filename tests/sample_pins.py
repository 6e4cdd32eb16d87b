"""The sample set's pixels, pinned: sha256 of each decoded scene (uint8 RGB, row-major), per size.

Any change to the renderer (aesthetic4k/data/raster.py, font.py, scenes.py) or to a library it
relies on that moves one pixel fails the tests that read this. A deliberate change bumps
``RENDERER_VERSION`` and regenerates, with the same release: these hashes, the shipped statistics
(``make sample-stats``) and the sample baselines (``make sample-baselines``, then ``make leaderboard``).
"""

PIXEL_SHA256 = {
    256: [
        "66a88530dcc7463291a8adb6fca97f3cfcfbe5beaaefa426677dc5a787333694",
        "4e3e0aec99668f796732e0ebee58962a0e2c57a750574ff023be8457aea873fb",
        "7300ab6830d28db2cf609913b8d13ea3a64cc4ddea7354a9e1e4ed762e00184a",
        "2cadae79555a043b5213484d8634c01790002f0cc5bb40f92a538802010e759f",
        "9af5627577c110f0461df1f10a13a76bffd2724790d72e546b8e8da3b9939291",
        "0a4ebffc09204949eb75db463c34d90aee4e310fb141b2e4521e144af72012af",
        "9391845e74b26ac2825405e35be6cea5787b930366da81204495f606ef953279",
        "26c43f4004513406ea247390a2e5339af6e85afce1b24f95e110030184336950",
    ],
    512: [
        "8471300b7844bc5b75c975fdc8d3ddc27004e6701919e066d0d7abe111a989cd",
        "4c79f89cb5baa4694b4bf23cebcc535639c3b086fb1f2dcfc9845070dd53ba55",
        "09c197514d9a3c99fefa2b10a08d0681018bf1804d4e67931ce5eb99a78c5ea5",
        "f83b569c9e11e289b5c97616b17dc7a9ccaff170b3da400c6beabd870171e877",
        "dadf5e62ac0f7bc8bdeed313b7da66a0ebd4af7093712f1ac5c69e310cbc3384",
        "d551065107b9378d0ec93f71cc38539a6d22cab1810cf20ab88ab5a4ab2e2431",
        "d09f5cd5c35a7b8a3075d7078bb549e870b93971acec71101b7034d9c58b5051",
        "adf1fd5a7d65d8b206166188c3a3d82d845098c11c005c1126c7ba737b364db0",
    ],
    2048: [
        "7f020597a5c843087e0cbcd91fea68c1be7922c8700d2be41962d99200ae9da3",
        "d674c1b72c3a9e2685bbced09181633167f45b164f3c0c2f2f40cd69ee41e20a",
        "1a8f5b62016b39c77a8b372788aa6beb2c2778dfc0c3891451b3fd3ddb6d4377",
        "5c1d44c6264c502e218bc608176477ba2f2d96d7a8a61a478898f26c4044af44",
        "57622b6c645c31dea957b274505ca907b08e60af8abe192d256ff0a1d7bc0fba",
        "3989deae70bd0c2a7208b0673d7c306cf98ae7a46afc225671cc5032a9e2f9a1",
        "fc025422ccf395528509d98ddd113cb6f462224bf90845c70dd695a2690aa647",
        "6eba6e1dacfd9f0ee4f4c43ae484b014aa509b12707aa79a19b090b3ddfa06e6",
    ],
}
