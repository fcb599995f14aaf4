// A minimal Android app using Open-AutoGLM: Silero VAD from the APK's assets, loaded without a copy.
// Build the SDK first (`cargo xtask build android`, which needs the NDK, Gradle and the Android SDK); this app takes
// its AAR. Not built on the CI machines, which have no Android SDK (see the README's "What was verified where").
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "voice-activity"
include(":app")
